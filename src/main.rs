use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = restjwt::cli::Cli::parse();
    restjwt::cli::run(cli, std::env::vars().collect()).await
}
