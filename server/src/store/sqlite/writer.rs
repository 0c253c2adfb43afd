//! The single writer's batching: concurrent inserts of responses and of
//! stored chat completions are queued, committed together in one
//! transaction with multi-row `INSERT`s, and retried one by one when a
//! batch fails.

use sqlx::sqlite::SqlitePool;
use sqlx::{Sqlite, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::chat::insert_chats;
use crate::store::rows::positioned;
use crate::store::{
    EventRow, ItemRow, NewChatCompletion, NewResponse, StoreResult, now_ms,
};

/// Most inserts committed in one transaction.
const MAX_BATCH: usize = 256;

/// A row (with its children) that the writer inserts.
pub(super) enum Insert {
    /// A response with its items and events.
    Response(NewResponse),
    /// A stored chat completion with its request messages.
    Chat(NewChatCompletion),
}

/// An insert and where its outcome goes.
pub(super) struct InsertJob {
    pub(super) insert: Insert,
    pub(super) done: oneshot::Sender<StoreResult<()>>,
}

/// Commits queued inserts in batches; a failing batch is retried row by row
/// so one bad response never fails its neighbours.
pub(super) async fn insert_writer(
    pool: SqlitePool,
    mut rx: mpsc::Receiver<InsertJob>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let rows: Vec<&Insert> = batch.iter().map(|j| &j.insert).collect();
        let result = insert_batch(&pool, &rows).await;
        drop(rows);
        match result {
            Ok(()) => {
                for job in batch.drain(..) {
                    let _ = job.done.send(Ok(()));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some(job) = batch.pop() {
                    let _ = job.done.send(Err(e));
                }
            }
            Err(_) => {
                for job in batch.drain(..) {
                    let r = insert_batch(&pool, &[&job.insert]).await;
                    let _ = job.done.send(r);
                }
            }
        }
    }
}

/// Rows per multi-row `INSERT`: a batch is cut greedily into these sizes,
/// so only a few statement shapes are ever prepared (and then cached).
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// Splits `rows` into slices of the sizes in [`CHUNKS`].
pub(super) fn chunked<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        let n = CHUNKS.into_iter().find(|&c| c <= rows.len())?;
        let (head, tail) = rows.split_at(n);
        rows = tail;
        Some(head)
    })
}

/// Inserts a batch in one transaction with multi-row `INSERT … VALUES`
/// statements whose values are bound parameters. (An earlier version
/// passed rows as one JSON array through `json_each`: callgrind put
/// SQLite's JSON functions at ~45% of the writer's time.)
async fn insert_batch(pool: &SqlitePool, rows: &[&Insert]) -> StoreResult<()> {
    let (mut responses, mut chats) = (Vec::new(), Vec::new());
    for row in rows {
        match row {
            Insert::Response(r) => responses.push(r),
            Insert::Chat(c) => chats.push(c),
        }
    }
    let mut tx = pool.begin().await?;
    insert_responses(&mut tx, &responses).await?;
    insert_chats(&mut tx, &chats).await?;
    tx.commit().await?;
    Ok(())
}

/// Inserts responses with their items and events.
async fn insert_responses(
    tx: &mut Transaction<'_, Sqlite>,
    rows: &[&NewResponse],
) -> StoreResult<()> {
    let items: Vec<ItemAt> = rows
        .iter()
        .flat_map(|r| {
            positioned(&r.input_items, &r.output_items)
                .map(move |(kind, pos, it)| (r.id.as_str(), kind, pos, it))
        })
        .collect();
    let events: Vec<EventOf> = rows
        .iter()
        .flat_map(|r| r.events.iter().map(move |e| (r.id.as_str(), e)))
        .collect();
    for chunk in chunked(rows) {
        let mut q = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO responses (id, org_id, previous_response_id, \
             status, background, body, run_request, created_at, updated_at) ",
        );
        q.push_values(chunk, |mut b, r| {
            b.push_bind(r.id.as_str())
                .push_bind(r.org_id.as_str())
                .push_bind(r.previous_response_id.as_deref())
                .push_bind(r.status.as_str())
                .push_bind(i64::from(r.background))
                .push_bind(r.body.as_str())
                .push_bind(r.run_request.as_deref())
                .push_bind(r.created_at)
                .push_bind(r.created_at);
        });
        q.build().execute(&mut **tx).await?;
    }
    insert_items(tx, &items).await?;
    insert_events(tx, &events).await
}

/// An item to insert: response id, kind, position, item.
pub(super) type ItemAt<'a> = (&'a str, i16, i64, &'a ItemRow);
/// An event to insert: response id, event.
pub(super) type EventOf<'a> = (&'a str, &'a EventRow);

/// Inserts items with as few multi-row statements as [`chunked`] allows.
pub(super) async fn insert_items(
    tx: &mut Transaction<'_, Sqlite>,
    items: &[ItemAt<'_>],
) -> StoreResult<()> {
    for chunk in chunked(items) {
        let mut q = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO response_items (response_id, kind, position, \
             item_id, body) ",
        );
        q.push_values(chunk, |mut b, (id, kind, pos, it)| {
            b.push_bind(*id)
                .push_bind(*kind)
                .push_bind(*pos)
                .push_bind(it.id.as_str())
                .push_bind(it.body.as_str());
        });
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Inserts events with as few multi-row statements as [`chunked`] allows.
pub(super) async fn insert_events(
    tx: &mut Transaction<'_, Sqlite>,
    events: &[EventOf<'_>],
) -> StoreResult<()> {
    let now = now_ms();
    for chunk in chunked(events) {
        let mut q = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO response_events (response_id, seq, body, \
             created_at) ",
        );
        q.push_values(chunk, |mut b, (id, e)| {
            b.push_bind(*id)
                .push_bind(e.seq)
                .push_bind(e.body.as_str())
                .push_bind(now);
        });
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}
