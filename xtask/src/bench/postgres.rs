//! A scratch PostgreSQL database for the background phase: created with a
//! fresh name on the server the tests use, dropped (`WITH (FORCE)`) when
//! the phase is over, also on errors.

use std::time::Duration;

use anyhow::Context;

/// PostgreSQL as the tests use it (trust auth).
const PG_HOST: &str = "postgres://postgres@127.0.0.1:5432";

/// A fresh PostgreSQL database, dropped when this is.
pub struct PgDatabase {
    pub name: String,
}

fn pg_block_on<T>(
    f: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?
        .block_on(f)
}

async fn pg_admin() -> Result<sqlx::PgPool, String> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(3))
        .connect(&format!("{PG_HOST}/postgres"))
        .await
        .map_err(|e| e.to_string())
}

async fn pg_execute(pool: &sqlx::PgPool, sql: String) -> Result<(), String> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(pool)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

impl PgDatabase {
    /// `Ok(Err(why))` when PostgreSQL is unreachable.
    pub fn create() -> anyhow::Result<Result<PgDatabase, String>> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("maniac_bench_{}_{nanos:08x}", std::process::id());
        let sql = format!("CREATE DATABASE {name}");
        // One runtime for the pool's whole life: a pool outlives the
        // runtime that opened it only to fail.
        let created = pg_block_on(async move {
            let admin = match pg_admin().await {
                Ok(a) => a,
                Err(e) => return Ok(Err(e)),
            };
            let r = pg_execute(&admin, sql).await;
            admin.close().await;
            r.map(Ok)
        });
        match created {
            Ok(Ok(())) => Ok(Ok(PgDatabase { name })),
            Ok(Err(unreachable)) => Ok(Err(unreachable)),
            Err(e) => Err(anyhow::Error::msg(e))
                .with_context(|| format!("creating database {name}")),
        }
    }

    pub fn url(&self) -> String {
        format!("{PG_HOST}/{}", self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = pg_block_on(async move {
            let admin = pg_admin().await?;
            let r = pg_execute(&admin, sql).await;
            admin.close().await;
            r
        });
        if let Err(e) = dropped {
            eprintln!("warning: could not drop database {}: {e}", self.name);
        }
    }
}
