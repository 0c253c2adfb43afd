//! Liveness and readiness over real HTTP: `/healthz` answers as long as
//! the process does, `/readyz` only when the database answers with every
//! migration applied (a PostgreSQL outage is in `database_outage.rs`).

use maniac_tests::gateway;
use maniac_tests::harness::{backend, http};
use serde_json::Value;

/// Forgets the newest applied migration, as a database left behind by an
/// older gateway version would look.
async fn forget_newest_migration(url: &str) {
    let sql = "DELETE FROM _sqlx_migrations WHERE version = \
               (SELECT MAX(version) FROM _sqlx_migrations)";
    let deleted = if backend() == "postgres" {
        let pool = sqlx::PgPool::connect(url).await.expect("connect");
        let n = sqlx::query(sql).execute(&pool).await.expect("delete");
        pool.close().await;
        n.rows_affected()
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
        let n = sqlx::query(sql).execute(&pool).await.expect("delete");
        pool.close().await;
        n.rows_affected()
    };
    assert_eq!(deleted, 1, "one migration row forgotten");
}

#[tokio::test]
async fn healthz_and_readyz_answer_ok_on_a_ready_gateway() {
    let gw = gateway!();
    for path in ["/healthz", "/readyz"] {
        let rsp = http().get(gw.url(path)).send().await.unwrap();
        assert_eq!(rsp.status(), 200, "{path}");
        let v: Value = rsp.json().await.unwrap();
        assert_eq!(v["status"], "ok", "{path}: {v}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn readyz_is_503_while_a_migration_is_missing_and_healthz_stays_200() {
    let gw = gateway!();
    forget_newest_migration(&gw.db.url).await;
    let rsp = http().get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(rsp.status(), 503);
    let e: Value = rsp.json().await.unwrap();
    assert_eq!(e["error"]["code"], "service_unavailable", "{e}");
    assert_eq!(e["error"]["type"], "server_error", "{e}");
    assert_eq!(e["error"]["param"], Value::Null, "{e}");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(message.contains("migrations"), "{message}");
    let live = http().get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(live.status(), 200, "liveness never asks the database");
    gw.stop().await;
}
