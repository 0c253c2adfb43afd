//! Item, event and chat message inserts: each is one statement whatever
//! the number of rows, the rows passed as arrays through `UNNEST`.

use sqlx::postgres::PgConnection;

use crate::store::rows::positioned;
use crate::store::{EventRow, ItemRow, now_ms};

/// Inserts input and output items with one multi-row statement; positions
/// count from 0 per kind, as in SQLite.
pub(super) async fn insert_items(
    conn: &mut PgConnection,
    id: &str,
    input: &[ItemRow],
    output: &[ItemRow],
) -> Result<(), sqlx::Error> {
    if input.is_empty() && output.is_empty() {
        return Ok(());
    }
    let n = input.len() + output.len();
    let (mut kinds, mut positions, mut ids, mut bodies) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (kind, pos, item) in positioned(input, output) {
        kinds.push(kind);
        positions.push(pos as i32);
        ids.push(item.id.as_str());
        bodies.push(item.body.as_str());
    }
    sqlx::query(
        "INSERT INTO response_items (response_id, kind, position, item_id, \
         body) SELECT $1, t.kind, t.position, t.item_id, t.body \
         FROM UNNEST($2::SMALLINT[], $3::INTEGER[], $4::TEXT[], $5::TEXT[]) \
         AS t (kind, position, item_id, body)",
    )
    .bind(id)
    .bind(kinds)
    .bind(positions)
    .bind(ids)
    .bind(bodies)
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts events with one multi-row statement.
pub(super) async fn insert_events(
    conn: &mut PgConnection,
    id: &str,
    events: &[EventRow],
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    let bodies: Vec<&str> = events.iter().map(|e| e.body.as_str()).collect();
    sqlx::query(
        "INSERT INTO response_events (response_id, seq, body, created_at) \
         SELECT $1, t.seq, t.body, $4 \
         FROM UNNEST($2::BIGINT[], $3::TEXT[]) AS t (seq, body)",
    )
    .bind(id)
    .bind(seqs)
    .bind(bodies)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts a stored chat completion's request messages with one multi-row
/// statement; positions count from 0.
pub(super) async fn insert_messages(
    conn: &mut PgConnection,
    id: &str,
    messages: &[ItemRow],
) -> Result<(), sqlx::Error> {
    if messages.is_empty() {
        return Ok(());
    }
    let positions: Vec<i64> = (0..messages.len() as i64).collect();
    let ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
    let bodies: Vec<&str> = messages.iter().map(|m| m.body.as_str()).collect();
    sqlx::query(
        "INSERT INTO chat_completion_messages (completion_id, position, \
         message_id, body) SELECT $1, t.position, t.message_id, t.body \
         FROM UNNEST($2::BIGINT[], $3::TEXT[], $4::TEXT[]) \
         AS t (position, message_id, body)",
    )
    .bind(id)
    .bind(positions)
    .bind(ids)
    .bind(bodies)
    .execute(conn)
    .await?;
    Ok(())
}
