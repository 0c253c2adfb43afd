//! `openapi generate` writes `openapi.json` from the API trait; `openapi
//! check` fails when the checked-in file differs from the code by one byte.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;

/// What to do with the spec.
#[derive(Subcommand)]
pub enum Action {
    /// Rewrite openapi.json from the code.
    Generate,
    /// Fail if openapi.json differs from the code.
    Check,
}

fn spec_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi.json")
}

pub fn run(action: Action) -> anyhow::Result<()> {
    let rendered = maniac_server::api::spec::openapi_document()
        .map_err(anyhow::Error::msg)?;
    validate(&rendered)?;
    let path = spec_path();
    match action {
        Action::Generate => {
            std::fs::write(&path, &rendered)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
        Action::Check => {
            let current = std::fs::read_to_string(&path).unwrap_or_default();
            if let Some(diff) = first_difference(&current, &rendered) {
                bail!(
                    "openapi.json is out of date with server/src/api:\n{diff}\n\
                     run `cargo xtask openapi generate` and commit the result"
                );
            }
            println!("openapi.json is up to date");
        }
    }
    Ok(())
}

/// Parses the document with `openapiv3` so a malformed spec never lands.
fn validate(doc: &str) -> anyhow::Result<()> {
    let spec: openapiv3::OpenAPI =
        serde_json::from_str(doc).context("openapi.json is not OpenAPI 3")?;
    if spec.paths.paths.is_empty() {
        bail!("the spec has no paths");
    }
    Ok(())
}

/// A short summary of where two texts first differ, or None if equal.
pub fn first_difference(old: &str, new: &str) -> Option<String> {
    if old == new {
        return None;
    }
    let (mut old_lines, mut new_lines) = (old.lines(), new.lines());
    let mut line = 1;
    loop {
        match (old_lines.next(), new_lines.next()) {
            (Some(a), Some(b)) if a == b => line += 1,
            (a, b) => {
                let changed = old
                    .lines()
                    .zip(new.lines())
                    .filter(|(a, b)| a != b)
                    .count();
                return Some(format!(
                    "first difference at line {line}:\n  checked in: {}\n  \
                     from code:  {}\n({changed} differing lines; {} vs {} \
                     lines)",
                    a.unwrap_or("<end of file>"),
                    b.unwrap_or("<end of file>"),
                    old.lines().count(),
                    new.lines().count()
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same check as `cargo xtask openapi check`, as a test.
    #[test]
    fn checked_in_spec_matches_the_code() {
        let rendered = maniac_server::api::spec::openapi_document().unwrap();
        validate(&rendered).unwrap();
        let current = std::fs::read_to_string(spec_path()).unwrap();
        if let Some(diff) = first_difference(&current, &rendered) {
            panic!(
                "openapi.json is stale; run `cargo xtask openapi generate`\n{diff}"
            );
        }
    }

    /// The drift check must notice a one-field change.
    #[test]
    fn drift_check_catches_a_changed_field() {
        let rendered = maniac_server::api::spec::openapi_document().unwrap();
        let mutated =
            rendered.replacen("\"sequence_number\"", "\"sequence_numbr\"", 1);
        assert_ne!(rendered, mutated);
        let diff =
            first_difference(&rendered, &mutated).expect("difference found");
        assert!(diff.contains("sequence_numbr"), "{diff}");
    }
}
