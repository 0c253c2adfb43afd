//! `cargo xtask sdk generate|check|consumer`: the checked-in Rust client in
//! `sdk/src/generated.rs`, its drift check against `openapi.json`, and the
//! example app of `tests/sdk-consumer/` run against a real gateway.

mod consumer;
mod generate;

use std::{path::PathBuf, process::Command};

use clap::Subcommand;

/// What to do with the SDK.
#[derive(Subcommand)]
pub enum Action {
    /// Rewrite sdk/src/generated.rs from openapi.json and set the crate
    /// version to the spec's `info.version`.
    Generate,
    /// Fail if sdk/src/generated.rs or the crate version differ from
    /// openapi.json.
    Check,
    /// Build the maniac binary, start it on a temporary SQLite database and
    /// run tests/sdk-consumer against it.
    Consumer,
}

pub fn run(action: Action) -> anyhow::Result<()> {
    match action {
        Action::Generate => generate::generate(&root()),
        Action::Check => generate::check(&root()),
        Action::Consumer => consumer::run(&root()),
    }
}

/// The workspace root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".."))
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}
