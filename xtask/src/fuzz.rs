//! `cargo xtask fuzz --seconds N [--target NAME]`: builds the libFuzzer
//! targets of `fuzz/` on the stable toolchain (coverage instrumentation by
//! stable `-C` flags, no sanitizer), runs each for N seconds from its
//! corpus `fuzz/corpus/<target>/` (plus the fuller local one of earlier
//! runs, `fuzz/target/corpus/<target>/`), rewrites the committed corpus as
//! the smallest set covering every edge reached, and fails on any crash,
//! which is kept in the corpus as a regression (the `fuzz_corpus` test
//! replays every corpus file).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use maniac_server::fuzzing::TARGETS;

/// The coverage instrumentation `cargo fuzz` uses, minus the sanitizer
/// (`-Zsanitizer` is the only part that needs nightly).
const RUSTFLAGS: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing";

/// Largest input tried: request bodies and upstream events of a few KiB
/// find the same paths as larger ones, faster.
const MAX_LEN: usize = 8192;

#[derive(clap::Args)]
pub struct FuzzArgs {
    /// How long to fuzz each target, in seconds.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Only this target (default: every one, one after the other).
    #[arg(long)]
    pub target: Option<String>,
}

/// One target's run.
struct Outcome {
    name: &'static str,
    execs: u64,
    execs_per_sec: u64,
    added: usize,
    corpus: usize,
    crash: Option<PathBuf>,
}

pub fn run(args: FuzzArgs) -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize().context("workspace root")?;
    let fuzz = root.join("fuzz");
    let names: Vec<&'static str> = match &args.target {
        None => TARGETS.iter().map(|(n, _)| *n).collect(),
        Some(t) => match TARGETS.iter().find(|(n, _)| n == t) {
            Some((n, _)) => vec![*n],
            None => bail!(
                "unknown fuzz target `{t}`: one of {}",
                TARGETS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ),
        },
    };
    let bins = build(&fuzz, &names)?;
    let mut outcomes = Vec::new();
    for name in names {
        let outcome = fuzz_one(&fuzz, &bins, name, args.seconds)?;
        outcomes.push(outcome);
    }
    eprintln!();
    eprintln!(
        "{:<26} {:>12} {:>10} {:>7} {:>7}  crash",
        "target", "execs", "execs/s", "added", "corpus"
    );
    for o in &outcomes {
        eprintln!(
            "{:<26} {:>12} {:>10} {:>7} {:>7}  {}",
            o.name,
            o.execs,
            o.execs_per_sec,
            o.added,
            o.corpus,
            o.crash.as_ref().map_or("-".into(), |p| p.display().to_string())
        );
    }
    let crashed: Vec<_> =
        outcomes.iter().filter(|o| o.crash.is_some()).collect();
    if !crashed.is_empty() {
        bail!(
            "{} target(s) crashed; each input is saved in its corpus as a \
             regression (replayed by `cargo test -p maniac-tests --test \
             fuzz_corpus`): fix the crash and commit it",
            crashed.len()
        );
    }
    Ok(())
}

/// Builds the instrumented targets; returns the directory of binaries.
fn build(fuzz: &Path, names: &[&str]) -> anyhow::Result<PathBuf> {
    // libfuzzer-sys compiles libFuzzer itself (C++), from crates.io.
    let cxx = Command::new("c++").arg("--version").output();
    if !cxx.is_ok_and(|o| o.status.success()) {
        bail!(
            "no C++ compiler (`c++`): libFuzzer is built from source; \
             install one (`apt-get install g++`)"
        );
    }
    // An explicit `--target` keeps RUSTFLAGS off build scripts and
    // proc macros, which must not be instrumented.
    let host = host_triple()?;
    let mut cmd =
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(fuzz)
        .args(["build", "--release", "--target", &host, "--target-dir"])
        .arg(fuzz.join("target"))
        .env("RUSTFLAGS", RUSTFLAGS)
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    for n in names {
        cmd.args(["--bin", n]);
    }
    eprintln!("==> building fuzz targets ({host}, stable, no sanitizer)");
    let status = cmd.status().context("starting cargo build")?;
    if !status.success() {
        bail!("building the fuzz targets failed");
    }
    Ok(fuzz.join("target").join(host).join("release"))
}

fn host_triple() -> anyhow::Result<String> {
    let out = Command::new("rustc").arg("-vV").output().context("rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .context("no host triple in `rustc -vV`")
}

/// Fuzzes one target, then minimizes its corpus with what it found.
fn fuzz_one(
    fuzz: &Path,
    bins: &Path,
    name: &'static str,
    seconds: u64,
) -> anyhow::Result<Outcome> {
    let bin = bins.join(name);
    let corpus = fuzz.join("corpus").join(name);
    // Everything found so far, kept locally: the committed corpus is only
    // its edge-minimized core.
    let found = fuzz.join("target").join("corpus").join(name);
    let scratch = fuzz.join("target").join("fuzz-work").join(name);
    let artifacts = scratch.join("artifacts");
    let merged = scratch.join("merged");
    let _ = std::fs::remove_dir_all(&scratch);
    for d in [&corpus, &found, &artifacts, &merged] {
        std::fs::create_dir_all(d)
            .with_context(|| format!("creating {}", d.display()))?;
    }
    eprintln!("==> fuzzing {name} for {seconds} s");
    let log = scratch.join("fuzz.log");
    // New inputs go to `found` (the first directory); the committed
    // corpus is only read, and rewritten minimized below.
    let status = Command::new(&bin)
        .arg(&found)
        .arg(&corpus)
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-max_len={MAX_LEN}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .args(["-print_final_stats=1", "-timeout=10", "-rss_limit_mb=2048"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .status()
        .with_context(|| format!("starting {}", bin.display()))?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let stat = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let execs = stat("stat::number_of_executed_units:");
    let execs_per_sec = stat("stat::average_exec_per_sec:");
    // A crash (panic, abort, OOM, timeout) leaves its input as an
    // artifact: keep it in the corpus, so the replay test holds it.
    let mut crash = None;
    for entry in std::fs::read_dir(&artifacts)? {
        let from = entry?.path();
        let Some(file) = from.file_name() else { continue };
        let to = corpus.join(file);
        std::fs::copy(&from, &to)?;
        crash = Some(to);
    }
    if crash.is_some() || !status.success() {
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        for l in tail.into_iter().rev() {
            eprintln!("    {l}");
        }
        eprintln!("    (full log: {})", log.display());
        if crash.is_none() {
            bail!("{name}: the fuzzer failed ({status}) without a crash input");
        }
    }
    let before = count(&corpus)?;
    minimize(&bin, &corpus, &found, &merged)?;
    let after = count(&corpus)?;
    eprintln!(
        "<== {name}: {execs} execs ({execs_per_sec}/s), corpus {before} -> \
         {after}"
    );
    Ok(Outcome {
        name,
        execs,
        execs_per_sec,
        added: after.saturating_sub(before),
        corpus: after,
        crash,
    })
}

/// Rewrites `corpus` as the smallest set that keeps the edges reached by
/// it and by `found` (libFuzzer's set-cover merge, hit counts ignored, so
/// it stays tens of files). Hand-written seeds (`seed-*`) and crash inputs
/// stay whatever they cover.
fn minimize(
    bin: &Path,
    corpus: &Path,
    found: &Path,
    merged: &Path,
) -> anyhow::Result<()> {
    let others = merged.with_file_name("others");
    std::fs::create_dir_all(&others)?;
    for entry in std::fs::read_dir(corpus)? {
        let path = entry?.path();
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        let kept = ["seed-", "crash-", "oom-", "timeout-", "slow-unit-"]
            .iter()
            .any(|p| file.starts_with(p));
        let to = if kept { merged } else { &others };
        std::fs::copy(&path, to.join(file))?;
    }
    let out = Command::new(bin)
        .args(["-set_cover_merge=1", "-use_counters=0"])
        // Inputs that crash again are already saved; not into the cwd.
        .arg(format!("-artifact_prefix={}/", others.display()))
        .arg(format!("-max_len={MAX_LEN}"))
        .arg(merged)
        .arg(&others)
        .arg(found)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("running the corpus merge")?;
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        bail!("merging the corpus of {} failed", bin.display());
    }
    std::fs::remove_dir_all(corpus)?;
    std::fs::create_dir_all(corpus)?;
    for entry in std::fs::read_dir(merged)? {
        let path = entry?.path();
        if let Some(file) = path.file_name() {
            std::fs::copy(&path, corpus.join(file))?;
        }
    }
    Ok(())
}

fn count(dir: &Path) -> anyhow::Result<usize> {
    Ok(std::fs::read_dir(dir)?.count())
}
