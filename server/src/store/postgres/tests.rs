//! Tests of the PostgreSQL store against a real database (skipped
//! without one unless `MANIAC_REQUIRE_POSTGRES=1`).
use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::sync::Arc;

use futures::FutureExt;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Row};

use super::notify::{decode_notice, encode_notice};
use super::*;

/// Server used by the integration test (trust auth).
const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

#[test]
fn notice_payloads_round_trip() {
    for notice in [
        Notice::Queued,
        Notice::Events("resp_1".into()),
        Notice::Cancel("resp_2".into()),
    ] {
        assert_eq!(decode_notice(&encode_notice(&notice)), Some(notice));
    }
    assert_eq!(decode_notice("x:1"), None);
}

#[test]
fn server_going_away_is_unavailable() {
    for code in ["08006", "53300", "57P01", "57P03", "57014", "25006"] {
        assert!(unavailable_code(code), "{code}");
    }
    for code in ["23505", "42P01", "22P02"] {
        assert!(!unavailable_code(code), "{code}");
    }
}

#[tokio::test]
async fn unreachable_database_is_unavailable_quickly() {
    let opts = PoolOptions {
        max_connections: 2,
        acquire_timeout_ms: 500,
        statement_timeout_ms: 1_000,
        ..PoolOptions::default()
    };
    let started = std::time::Instant::now();
    let result =
        PgStore::open("postgres://postgres@127.0.0.1:1/none", &opts).await;
    assert!(matches!(result, Err(StoreError::Unavailable(_))));
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// A connection to the `test` database, or None (skip) when there is no
/// PostgreSQL server, unless MANIAC_REQUIRE_POSTGRES=1.
async fn admin() -> Option<PgConnection> {
    let url = format!("{SERVER}/test");
    let connect = async {
        let opts = PgConnectOptions::from_str(&url)?;
        PgConnection::connect_with(&opts).await
    };
    let error =
        match tokio::time::timeout(Duration::from_secs(3), connect).await {
            Ok(Ok(conn)) => return Some(conn),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_string(),
        };
    if std::env::var("MANIAC_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
        panic!(
            "no PostgreSQL at {url} ({error}) and MANIAC_REQUIRE_POSTGRES=1"
        );
    }
    println!("skipped: no PostgreSQL at {url} ({error})");
    None
}

fn item(id: &str) -> ItemRow {
    ItemRow { id: id.to_string(), body: format!(r#"{{"id":"{id}"}}"#) }
}

fn stored(
    id: &str,
    org: &str,
    prev: Option<&str>,
    created_at: i64,
    input: &[&str],
    output: &[&str],
) -> NewResponse {
    NewResponse {
        id: id.to_string(),
        org_id: org.to_string(),
        previous_response_id: prev.map(str::to_string),
        status: ResponseStatus::Completed,
        background: false,
        body: format!(r#"{{"id":"{id}"}}"#),
        run_request: None,
        input_items: input.iter().map(|i| item(i)).collect(),
        output_items: output.iter().map(|i| item(i)).collect(),
        events: vec![],
        created_at,
    }
}

fn queued(id: &str, org: &str, created_at: i64) -> NewResponse {
    NewResponse {
        status: ResponseStatus::Queued,
        background: true,
        run_request: Some(format!(r#"{{"run":"{id}"}}"#)),
        events: vec![EventRow { seq: 0, body: "created".into() }],
        ..stored(id, org, None, created_at, &["in"], &[])
    }
}

fn end(status: ResponseStatus, seq: i64) -> RunEnd {
    let name = status.as_str();
    RunEnd {
        status,
        body: format!(r#"{{"status":"{name}"}}"#),
        output_items: vec![item(&format!("out_{seq}"))],
        events: vec![EventRow { seq, body: name.into() }],
    }
}

fn ids(items: &Items) -> Vec<&str> {
    items.iter().map(|i| i.id.as_str()).collect()
}

async fn expect_notice(rx: &mut broadcast::Receiver<Notice>, want: Notice) {
    let wait = async {
        loop {
            match rx.recv().await {
                Ok(n) if n == want => return,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("notices closed: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .unwrap_or_else(|_| panic!("no {want:?} notice within 5 s"));
}

/// Runs `test` against a fresh database (dropped afterwards, even when the
/// test panics), or skips it as [`admin`] says.
async fn with_database<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(mut admin) = admin().await else { return };
    let name = format!("maniac_store_test_{}", crate::ids::random_hex(6));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create database");
    let url = format!("{SERVER}/{name}");
    let outcome = AssertUnwindSafe(test(url)).catch_unwind().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .expect("drop database");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store() {
    with_database(|url| async move { exercise(&url).await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stored_chat_completions() {
    with_database(|url| async move {
        let opts = PoolOptions {
            max_connections: 4,
            acquire_timeout_ms: 3_000,
            statement_timeout_ms: 5_000,
            ..PoolOptions::default()
        };
        let store = PgStore::open(&url, &opts).await.expect("open");
        crate::store::chat_tests::exercise(&store).await;
    })
    .await;
}

async fn exercise(url: &str) {
    let opts = PoolOptions {
        max_connections: 8,
        acquire_timeout_ms: 3_000,
        statement_timeout_ms: 5_000,
        ..PoolOptions::default()
    };
    let store = Arc::new(PgStore::open(url, &opts).await.expect("open"));
    // A second open runs the (already applied) migrations again.
    drop(PgStore::open(url, &opts).await.expect("reopen"));
    store.ping().await.unwrap();
    let timeout: String = sqlx::query("SHOW statement_timeout")
        .fetch_one(&store.pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(timeout, "5s");

    // Keys and organizations.
    let k1 =
        store.create_key("acme", Some("ci"), "key_1", "hash_1").await.unwrap();
    assert_eq!((k1.key_id.as_str(), k1.name.as_deref()), ("key_1", Some("ci")));
    store.create_key("acme", None, "key_2", "hash_2").await.unwrap();
    store.create_key("other", None, "key_3", "hash_3").await.unwrap();
    let found = store.find_key("hash_1").await.unwrap().expect("key");
    assert_eq!(
        (found.key_id.as_str(), found.org_name.as_str()),
        ("key_1", "acme")
    );
    assert!(!found.revoked);
    let org = found.org_id.clone();
    assert_eq!(store.find_key("hash_2").await.unwrap().unwrap().org_id, org);
    let other = store.find_key("hash_3").await.unwrap().unwrap().org_id;
    assert_ne!(other, org);
    assert!(store.find_key("nope").await.unwrap().is_none());
    assert_eq!(
        store.find_org("acme").await.unwrap().as_deref(),
        Some(org.as_str())
    );
    assert_eq!(
        store.find_org(&org).await.unwrap().as_deref(),
        Some(org.as_str())
    );
    assert!(store.find_org("nobody").await.unwrap().is_none());
    assert_eq!(store.count_keys().await.unwrap(), 3);
    assert!(store.revoke_key("key_1").await.unwrap());
    assert!(!store.revoke_key("key_404").await.unwrap());
    assert!(store.find_key("hash_1").await.unwrap().unwrap().revoked);
    let listed = store.list_keys().await.unwrap();
    assert_eq!(listed.len(), 3);
    assert!(
        listed.iter().any(|k| k.key_id == "key_1" && k.revoked_at.is_some())
    );
    assert!(matches!(
        store.create_key("acme", None, "key_4", "hash_1").await,
        Err(StoreError::Conflict(_))
    ));

    // A three-turn chain.
    store
        .insert_response(stored("resp_1", &org, None, 1, &["in_1"], &["out_1"]))
        .await
        .unwrap();
    store
        .insert_response(stored(
            "resp_2",
            &org,
            Some("resp_1"),
            2,
            &["in_2a", "in_2b"],
            &["out_2"],
        ))
        .await
        .unwrap();
    store
        .insert_response(stored(
            "resp_3",
            &org,
            Some("resp_2"),
            3,
            &["in_3"],
            &["out_3a", "out_3b"],
        ))
        .await
        .unwrap();
    store
        .insert_response(stored("resp_empty", &org, None, 4, &[], &[]))
        .await
        .unwrap();
    let chain =
        store.chain_items(&org, "resp_3").await.unwrap().expect("chain");
    assert_eq!(
        ids(&chain),
        [
            "in_1", "out_1", "in_2a", "in_2b", "out_2", "in_3", "out_3a",
            "out_3b"
        ]
    );
    assert_eq!(chain[0].body, r#"{"id":"in_1"}"#);
    let chain = store.chain_items(&org, "resp_1").await.unwrap().unwrap();
    assert_eq!(ids(&chain), ["in_1", "out_1"]);
    assert_eq!(
        store.chain_items(&org, "resp_empty").await.unwrap().unwrap().len(),
        0
    );
    assert!(store.chain_items(&other, "resp_3").await.unwrap().is_none());
    assert!(store.chain_items(&org, "resp_404").await.unwrap().is_none());
    assert_eq!(
        ids(&store.own_input_items("resp_2").await.unwrap()),
        ["in_2a", "in_2b"]
    );
    assert_eq!(
        store.find_item(&org, "out_2").await.unwrap().as_deref(),
        Some(r#"{"id":"out_2"}"#)
    );
    assert!(store.find_item(&other, "out_2").await.unwrap().is_none());
    let got =
        store.get_response(&org, "resp_2").await.unwrap().expect("response");
    assert_eq!((got.status.as_str(), got.background), ("completed", false));
    assert!(store.get_response(&other, "resp_2").await.unwrap().is_none());
    assert!(!store.delete_response(&other, "resp_3").await.unwrap());
    assert!(store.delete_response(&org, "resp_3").await.unwrap());
    assert!(store.get_response(&org, "resp_3").await.unwrap().is_none());
    assert!(store.find_item(&org, "out_3a").await.unwrap().is_none());
    assert!(!store.delete_response(&org, "resp_3").await.unwrap());

    // The background queue, claimed by four replicas at once.
    let mut notices = store.notices().expect("notices");
    let queued_ids: Vec<String> =
        (0..20).map(|i| format!("resp_q{i:02}")).collect();
    for (i, id) in queued_ids.iter().enumerate() {
        store.insert_response(queued(id, &org, 100 + i as i64)).await.unwrap();
    }
    expect_notice(&mut notices, Notice::Queued).await;
    let claimers = (0..4).map(|w| {
        let store = store.clone();
        tokio::spawn(async move {
            let owner = format!("replica_{w}");
            let mut claimed = Vec::new();
            while let Some(run) =
                store.claim_next(&owner, 30_000, now_ms()).await.unwrap()
            {
                claimed.push((owner.clone(), run));
            }
            claimed
        })
    });
    let mut claims = Vec::new();
    for task in claimers.collect::<Vec<_>>() {
        claims.extend(task.await.unwrap());
    }
    let claimed_ids: HashSet<&str> =
        claims.iter().map(|(_, r)| r.id.as_str()).collect();
    assert_eq!(claims.len(), 20, "each run claimed exactly once");
    assert_eq!(claimed_ids, queued_ids.iter().map(String::as_str).collect());
    for (_, run) in &claims {
        assert_eq!(run.next_seq, 1);
        assert_eq!(run.org_id, org);
        assert_eq!(run.run_request, format!(r#"{{"run":"{}"}}"#, run.id));
    }
    assert!(
        store
            .claim_next("replica_x", 30_000, now_ms())
            .await
            .unwrap()
            .is_none()
    );

    // Events and the end of a run, guarded by the lease.
    let (owner, run) = &claims[0];
    let id = run.id.as_str();
    let stored_run = store.get_response(&org, id).await.unwrap().unwrap();
    assert_eq!(stored_run.status, ResponseStatus::InProgress);
    assert_eq!(stored_run.lease_owner.as_deref(), Some(owner.as_str()));
    let more = [EventRow { seq: 1, body: "delta".into() }];
    assert!(
        store
            .append_events(id, owner, &more, Some(r#"{"snap":1}"#))
            .await
            .unwrap()
    );
    expect_notice(&mut notices, Notice::Events(id.to_string())).await;
    assert!(!store.append_events(id, "intruder", &more, None).await.unwrap());
    assert!(store.renew_lease(id, owner, now_ms() + 60_000).await.unwrap());
    assert!(
        !store.renew_lease(id, "intruder", now_ms() + 60_000).await.unwrap()
    );
    assert_eq!(
        store.get_response(&org, id).await.unwrap().unwrap().body,
        r#"{"snap":1}"#
    );
    let page = store.events_after(id, -1, 1).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [0]);
    assert!(!store.cancel_requested(id).await.unwrap());
    store.request_cancel(&other, id).await.unwrap();
    assert!(!store.cancel_requested(id).await.unwrap());
    store.request_cancel(&org, id).await.unwrap();
    assert!(store.cancel_requested(id).await.unwrap());
    expect_notice(&mut notices, Notice::Cancel(id.to_string())).await;
    assert!(store.cancel_requested("resp_404").await.unwrap());
    assert!(
        !store
            .finish_run(id, "intruder", end(ResponseStatus::Completed, 2))
            .await
            .unwrap()
    );
    assert!(
        store
            .finish_run(id, owner, end(ResponseStatus::Completed, 2))
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_run(id, owner, end(ResponseStatus::Completed, 3))
            .await
            .unwrap()
    );
    assert!(!store.append_events(id, owner, &more, None).await.unwrap());
    let done = store.get_response(&org, id).await.unwrap().unwrap();
    assert_eq!((done.status.as_str(), done.lease_owner), ("completed", None));
    let all = store.events_after(id, -1, 100).await.unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(
        store.events_after(id, 1, 100).await.unwrap()[0].body,
        "completed"
    );
    let transcript = store.chain_items(&org, id).await.unwrap().unwrap();
    assert_eq!(ids(&transcript), ["in", "out_2"]);

    // A lease in the past is reported as expired, with its owner.
    let now = now_ms();
    assert!(store.expired_runs(now).await.unwrap().is_empty());
    store.insert_response(queued("resp_stale", &org, 1_000)).await.unwrap();
    let stale =
        store.claim_next("replica_dead", -1_000, now).await.unwrap().unwrap();
    assert_eq!(stale.id, "resp_stale");
    let expired = store.expired_runs(now).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(
        (
            expired[0].id.as_str(),
            expired[0].lease_owner.as_str(),
            expired[0].next_seq
        ),
        ("resp_stale", "replica_dead", 1)
    );
    // 19 claimed runs still hold 30 s leases.
    assert_eq!(store.expired_runs(now + 3_600_000).await.unwrap().len(), 20);

    // Cancelling a queued run, not a claimed one.
    store.insert_response(queued("resp_cq", &org, 2_000)).await.unwrap();
    assert!(
        !store
            .cancel_queued(&other, "resp_cq", end(ResponseStatus::Cancelled, 1))
            .await
            .unwrap()
    );
    assert!(
        store
            .cancel_queued(&org, "resp_cq", end(ResponseStatus::Cancelled, 1))
            .await
            .unwrap()
    );
    expect_notice(&mut notices, Notice::Events("resp_cq".into())).await;
    assert!(
        !store
            .cancel_queued(&org, "resp_cq", end(ResponseStatus::Cancelled, 2))
            .await
            .unwrap()
    );
    assert!(
        !store
            .cancel_queued(
                &org,
                &claims[1].1.id,
                end(ResponseStatus::Cancelled, 1)
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_response(&org, "resp_cq").await.unwrap().unwrap().status,
        ResponseStatus::Cancelled
    );
    assert!(
        store
            .claim_next("replica_x", 30_000, now_ms())
            .await
            .unwrap()
            .is_none()
    );

    // Pruning drops the logs of finished runs only.
    assert_eq!(store.prune_events(now_ms() + 60_000).await.unwrap(), 5);
    assert!(store.events_after(id, -1, 100).await.unwrap().is_empty());
    assert_eq!(
        store.events_after(&claims[1].1.id, -1, 100).await.unwrap().len(),
        1
    );

    // The LISTEN connection comes back after its backend is killed.
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    assert_eq!(killed, [true]);
    let target = claims[1].1.id.clone();
    let recovered = async {
        loop {
            store.request_cancel(&org, &target).await.unwrap();
            let wait =
                expect_notice(&mut notices, Notice::Cancel(target.clone()));
            if tokio::time::timeout(Duration::from_millis(300), wait)
                .await
                .is_ok()
            {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), recovered)
        .await
        .expect("notices resume after the LISTEN connection is lost");
}
