//! The `restjwt` server and its commands, built on the library's public API.

mod cli;

use clap::Parser;

/// glibc's allocator was a sixth of a rotation's CPU: its requests allocate on the runtime's
/// thread and free on the writer's, which glibc pays for in consolidation and locks.
/// mimalloc: rotation 1.17x, `GET /api/user/` 1.07x (bench/ab.sh, one run of three rounds).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    cli::run(cli, std::env::vars().collect()).await
}
