//! Handing over the key `maniac serve` creates on an empty store without
//! leaking it into logs: shown only on an interactive terminal, otherwise
//! written to `maniac-initial-key`, readable by its owner only, beside the
//! SQLite file (in the working directory for PostgreSQL). Captured stdout
//! (systemd, Docker, CI logs) never holds it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The name of the key file.
pub const FILE_NAME: &str = "maniac-initial-key";

/// Where the key file of the database at `database_url` goes: beside a
/// SQLite file, else (PostgreSQL, in-memory SQLite) the working directory.
/// Relative paths stay relative to the working directory.
pub fn path_for(database_url: &str) -> PathBuf {
    let sqlite_dir = database_url
        .starts_with("sqlite:")
        .then(|| sqlx::sqlite::SqliteConnectOptions::from_str(database_url))
        .and_then(Result::ok)
        .map(|o| o.get_filename().to_path_buf())
        .filter(|f| !f.as_os_str().is_empty() && !f.starts_with(":memory:"))
        .and_then(|f| f.parent().map(Path::to_path_buf));
    match sqlite_dir {
        Some(dir) => dir.join(FILE_NAME),
        None => PathBuf::from(FILE_NAME),
    }
}

/// Writes `key` (and a newline) to `path` with mode 0600. A file left
/// there before is replaced, never reused: its mode could be wider.
pub fn write(path: &Path, key: &str) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(key.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_goes_beside_sqlite_files_else_in_the_working_dir() {
        let cases = [
            (
                "sqlite:///var/lib/maniac/m.db",
                "/var/lib/maniac/maniac-initial-key",
            ),
            ("sqlite:///var/lib/m.db?mode=rwc", "/var/lib/maniac-initial-key"),
            ("sqlite://data/m.db", "data/maniac-initial-key"),
            ("sqlite:m.db", "maniac-initial-key"),
            ("sqlite::memory:", "maniac-initial-key"),
            ("postgres://u@h/db", "maniac-initial-key"),
        ];
        for (url, want) in cases {
            assert_eq!(path_for(url), PathBuf::from(want), "{url}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_owner_only_and_replaces_an_old_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir()
            .join(format!("maniac-initial-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE_NAME);
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .unwrap();
        write(&path, "sk-mn-new").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "sk-mn-new\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
