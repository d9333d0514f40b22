use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc malloc: allocation and free were a fifth of the CPU of a read
/// (perf, 64 clients), most of it glibc's arena locking and consolidation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    pizza_orders::cli::run(pizza_orders::cli::Cli::parse())
}
