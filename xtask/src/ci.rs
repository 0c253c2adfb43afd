//! `cargo xtask ci`: everything CI checks, in order, failing fast: format,
//! lints, spec and SDK drift, the SDK's docs and package, the SDK consumer
//! app against a gateway, the Rust suites on SQLite and PostgreSQL, and the
//! official-SDK compatibility suites.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

fn run(name: &str, cmd: &mut Command) -> anyhow::Result<()> {
    let started = Instant::now();
    eprintln!("==> {name}");
    let status = cmd.status().with_context(|| format!("starting {name}"))?;
    eprintln!(
        "<== {name}: {status} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    if !status.success() {
        bail!("{name} failed");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Runs every check.
pub fn run_all() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::set_current_dir(&root).context("workspace root")?;
    run("cargo fmt --check", cargo().args(["fmt", "--all", "--check"]))?;
    run(
        "cargo fmt --check (sdk consumer)",
        cargo().args([
            "fmt",
            "--check",
            "--manifest-path",
            "tests/sdk-consumer/Cargo.toml",
        ]),
    )?;
    run(
        "cargo fmt --check (fuzz targets)",
        cargo().args(["fmt", "--check", "--manifest-path", "fuzz/Cargo.toml"]),
    )?;
    run(
        "cargo clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    run("openapi check", cargo().args(["xtask", "openapi", "check"]))?;
    run("sdk check", cargo().args(["xtask", "sdk", "check"]))?;
    run(
        "sdk docs",
        cargo()
            .args(["doc", "-p", "maniac-sdk", "--no-deps"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    // Builds the crate as crates.io would get it, alone, outside the
    // workspace (uncommitted edits included, so it runs before a commit).
    run(
        "sdk package",
        cargo().args(["package", "-p", "maniac-sdk", "--allow-dirty"]),
    )?;
    run("build binaries", cargo().args(["build", "--workspace", "--bins"]))?;
    run(
        "sdk consumer against a gateway",
        cargo().args(["xtask", "sdk", "consumer"]),
    )?;
    run(
        "tests (SQLite)",
        cargo()
            .args(["test", "--workspace"])
            .env("MANIAC_TEST_BACKEND", "sqlite"),
    )?;
    let require_pg = std::env::var("CI").is_ok_and(|v| !v.is_empty());
    let mut pg = cargo();
    pg.args(["test", "-p", "maniac-tests"])
        .env("MANIAC_TEST_BACKEND", "postgres");
    if require_pg {
        pg.env("MANIAC_REQUIRE_POSTGRES", "1");
    }
    run("tests (PostgreSQL)", &mut pg)?;
    let compat = root.join("tests/compat/run.sh");
    if compat.exists() {
        run("official SDK suites", Command::new("bash").arg(compat))?;
    }
    eprintln!("all checks passed");
    Ok(())
}
