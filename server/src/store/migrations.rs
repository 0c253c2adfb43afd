//! Whether a database's schema is the one this binary expects: what
//! `/readyz` asks of both backends (sqlx records applied migrations in
//! `_sqlx_migrations`).

use sqlx::migrate::Migrator;

/// The versions recorded as applied successfully.
pub(super) const APPLIED_MIGRATIONS: &str =
    "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";

/// True when every migration of `migrator` is among `applied`.
pub(super) fn all_applied(migrator: &Migrator, applied: &[i64]) -> bool {
    migrator.iter().all(|m| applied.binary_search(&m.version).is_ok())
}
