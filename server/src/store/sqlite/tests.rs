//! Tests of the SQLite store: the WAL stays bounded under steady writes,
//! batches are cut into the few prepared statement shapes, and stored chat
//! completions behave as `chat_tests` says, paged along their indexes.

use std::path::PathBuf;

use super::chat::list_query;
use super::writer::chunked;
use super::*;

/// A store on a fresh file in its own temp directory, which the caller
/// removes.
async fn temp_store(name: &str) -> (SqliteStore, PathBuf) {
    let dir = std::env::temp_dir()
        .join(format!("maniac-{name}-{}", crate::ids::random_hex(6)));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}", dir.join("t.db").display());
    let store =
        SqliteStore::open(&url, &PoolOptions::default()).await.expect("open");
    (store, dir)
}

/// Under steady writes the writer never checkpoints, so only the
/// checkpointer keeps the WAL bounded: 48 MiB of responses go in, the
/// log file ends at most at its 32 MiB cap, and every row reads back.
#[tokio::test]
async fn the_wal_stays_bounded_while_the_writer_never_checkpoints() {
    let (store, dir) = temp_store("wal").await;
    store.create_key("o", None, "key_t", "h").await.expect("org");
    let org = store.find_org("o").await.expect("find").expect("org id");
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(1 << 20));
    let mut peak = 0;
    for i in 0..48 {
        store
            .insert_response(NewResponse {
                id: format!("resp_{i:04}"),
                org_id: org.clone(),
                previous_response_id: None,
                status: ResponseStatus::Completed,
                background: false,
                body: body.clone(),
                run_request: None,
                input_items: Vec::new(),
                output_items: Vec::new(),
                events: Vec::new(),
                created_at: now_ms(),
            })
            .await
            .expect("insert");
        tokio::time::sleep(Duration::from_millis(40)).await;
        let wal =
            std::fs::metadata(dir.join("t.db-wal")).map_or(0, |m| m.len());
        peak = peak.max(wal);
    }
    assert!(peak > 0, "the database is in WAL mode");
    assert!(peak <= 40 << 20, "WAL grew to {peak} bytes");
    let wal = std::fs::metadata(dir.join("t.db-wal")).map_or(0, |m| m.len());
    assert!(wal <= 32 << 20, "WAL left at {wal} bytes");
    for i in [0, 47] {
        let r = store.get_response(&org, &format!("resp_{i:04}")).await;
        assert_eq!(r.expect("read").expect("row").body.len(), body.len());
    }
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn batches_are_cut_into_the_prepared_sizes_in_order() {
    let rows: Vec<u32> = (0..87).collect();
    let sizes: Vec<usize> = chunked(&rows).map(<[u32]>::len).collect();
    assert_eq!(sizes, [64, 16, 4, 1, 1, 1]);
    let again: Vec<u32> = chunked(&rows).flatten().copied().collect();
    assert_eq!(again, rows);
    assert_eq!(chunked::<u32>(&[]).count(), 0);
}

#[tokio::test]
async fn stored_chat_completions_on_sqlite() {
    let (store, dir) = temp_store("chat").await;
    crate::store::chat_tests::exercise(&store).await;
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}

/// Every shape of the list query walks one index in the order asked, so a
/// page stops after `limit` rows: no temporary B-tree sorts the whole list.
#[tokio::test]
async fn chat_list_pages_walk_an_index_in_order() {
    let (store, dir) = temp_store("chat-plan").await;
    let pairs = vec![("k".to_string(), "v".to_string())];
    let cases = [
        ("oldest first", false, None, vec![], "chat_completions_by_org"),
        ("newest first", true, None, vec![], "chat_completions_by_org"),
        ("model", false, Some("m"), vec![], "chat_completions_by_model"),
        (
            "model, newest",
            true,
            Some("m"),
            pairs.clone(),
            "chat_completions_by_model",
        ),
        ("metadata", true, None, pairs, "chat_completions_by_org"),
    ];
    let mut failures = Vec::new();
    for (name, descending, model, metadata, index) in cases {
        let q = ChatListQuery {
            after: Some("chatcmpl-x".into()),
            limit: 10,
            descending,
            model: model.map(str::to_string),
            metadata,
        };
        let cursor = Some((1, "chatcmpl-x"));
        let rows = list_query("EXPLAIN QUERY PLAN ", "org", &q, cursor)
            .build()
            .fetch_all(&store.read)
            .await
            .expect("explain");
        let plan: Vec<String> = rows
            .iter()
            .map(|r| r.text("detail"))
            .collect::<Result<_, _>>()
            .expect("detail");
        let walks = plan.iter().any(|d| d.contains(&format!("INDEX {index} ")));
        let sorts = plan.iter().any(|d| d.contains("TEMP B-TREE"));
        if !walks || sorts {
            failures.push(format!("{name}: {plan:?}"));
        }
    }
    assert!(failures.is_empty(), "plans:\n{}", failures.join("\n"));
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}
