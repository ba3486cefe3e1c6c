//! The `restjwt` server and its commands, built on the library's public API.

mod cli;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    cli::run(cli, std::env::vars().collect()).await
}
