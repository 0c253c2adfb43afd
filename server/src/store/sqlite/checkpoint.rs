//! The WAL checkpointer: a connection beside the single writer that copies
//! the log back into the database file, so the writer never stalls on a
//! checkpoint's fsyncs and the log stays bounded.

use std::time::Duration;

use sqlx::sqlite::SqlitePool;

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Checkpoints the WAL beside the writer. PASSIVE never blocks readers or
/// the writer; frames written meanwhile wait for the next round. Ends when
/// the store is dropped.
pub(super) async fn checkpoint_loop(
    pool: SqlitePool,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(e) = checkpoint(&pool).await {
            tracing::warn!(error = %e, "SQLite WAL checkpoint failed; will retry");
        }
    }
    pool.close().await;
}

/// WAL frames (pages) after which the log is restarted from its start.
const WAL_RESTART_FRAMES: i64 = 8192;

/// Copies the WAL into the database without blocking anyone. Under
/// steady writes the log never drains by itself, so once it holds more
/// than [`WAL_RESTART_FRAMES`] a RESTART checkpoint (by then with almost
/// nothing left to copy) waits for the writer's current transaction and
/// makes the next one start the log over.
async fn checkpoint(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let (_, log, _): (i64, i64, i64) =
        sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(pool)
            .await?;
    if log > WAL_RESTART_FRAMES {
        sqlx::query("PRAGMA wal_checkpoint(RESTART)").execute(pool).await?;
    }
    Ok(())
}
