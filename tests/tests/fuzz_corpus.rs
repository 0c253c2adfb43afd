//! Replays every fuzz corpus file (`fuzz/corpus/<target>/`, seeds, what
//! `cargo xtask fuzz` found, and every crash it ever saved) through its
//! target in `maniac_server::fuzzing`, on the stable toolchain and without
//! libFuzzer: a crash once found stays a regression test.

use std::path::Path;

use maniac_server::fuzzing::TARGETS;

#[test]
fn every_corpus_input_runs_through_its_target_without_a_panic() {
    let corpora = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut failures = Vec::new();
    let mut table = Vec::new();
    for (name, target) in TARGETS {
        let dir = corpora.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("corpus entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{}: no seed inputs", dir.display());
        for file in &files {
            let data = std::fs::read(file).expect("corpus file");
            if let Err(panic) = std::panic::catch_unwind(|| target(&data)) {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| {
                        panic.downcast_ref::<&str>().map(|s| s.to_string())
                    })
                    .unwrap_or_default();
                failures.push(format!("{name}: {}: {msg}", file.display()));
            }
        }
        table.push(format!("{name:<26} {:>5} inputs", files.len()));
    }
    assert!(
        failures.is_empty(),
        "corpus inputs that panic:\n{}\n\nreplayed:\n{}",
        failures.join("\n"),
        table.join("\n")
    );
}
