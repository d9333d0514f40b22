use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    pizza_orders::cli::run(pizza_orders::cli::Cli::parse())
}
