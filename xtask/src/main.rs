//! Developer tasks: `cargo xtask openapi generate|check`, `cargo xtask sdk
//! generate|check|consumer`, `cargo xtask bench`, `cargo xtask fuzz`.

mod bench;
mod ci;
mod fuzz;
mod openapi;
mod sdk;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Maniac developer tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Render or verify openapi.json.
    Openapi {
        #[command(subcommand)]
        action: openapi::Action,
    },
    /// Render or verify the SDK's generated client (sdk/src/generated.rs).
    Sdk {
        #[command(subcommand)]
        action: sdk::Action,
    },
    /// Run everything CI checks (format, lints, spec drift, all suites).
    Ci,
    /// Benchmark the gateway against the fake upstream (release builds).
    Bench(bench::BenchArgs),
    /// One load phase of `bench` (internal: run from the release build).
    #[command(hide = true)]
    BenchLoad(bench::load::LoadArgs),
    /// Coverage-guided fuzzing of the server's decoders (libFuzzer, on
    /// stable): each target N seconds, new coverage merged into its corpus.
    Fuzz(fuzz::FuzzArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Openapi { action } => openapi::run(action),
        Command::Sdk { action } => sdk::run(action),
        Command::Ci => ci::run_all(),
        Command::Bench(args) => bench::run(args),
        Command::BenchLoad(args) => bench::load::run(args),
        Command::Fuzz(args) => fuzz::run(args),
    }
}
