//! LISTEN/NOTIFY: how replicas wake each other. Payloads are `q` (a run
//! was queued), `e:<id>` (events appended) and `c:<id>` (cancel requested).

use super::*;

/// Encodes a notice as a NOTIFY payload: `q`, `e:<id>` or `c:<id>`.
pub(super) fn encode_notice(notice: &Notice) -> String {
    match notice {
        Notice::Queued => "q".to_string(),
        Notice::Events(id) => format!("e:{id}"),
        Notice::Cancel(id) => format!("c:{id}"),
    }
}

/// Decodes a NOTIFY payload; None for one this version does not know.
pub(super) fn decode_notice(payload: &str) -> Option<Notice> {
    if payload == "q" {
        return Some(Notice::Queued);
    }
    if let Some(id) = payload.strip_prefix("e:") {
        return Some(Notice::Events(id.to_string()));
    }
    payload.strip_prefix("c:").map(|id| Notice::Cancel(id.to_string()))
}

/// Publishes a notice; delivered when the surrounding transaction commits.
pub(super) async fn notify(
    conn: &mut PgConnection,
    notice: &Notice,
) -> Result<(), sqlx::Error> {
    crate::store::counters::bump(&crate::store::counters::COUNTERS.notifies);
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(encode_notice(notice))
        .execute(conn)
        .await?;
    Ok(())
}

pub(super) async fn subscribe(
    pool: &PgPool,
) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Forwards notifications to the broadcast channel for as long as the
/// store lives. `PgListener` re-establishes a connection that died with an
/// I/O error by itself (`try_recv` then answers `Ok(None)`); any other
/// failure (server shutdown message, database down while reconnecting)
/// drops the listener and subscribes again with a backoff. Notifications
/// sent while disconnected are lost, so every reconnection also wakes the
/// local dispatcher (`Queued`); event readers poll anyway.
pub(super) async fn relay(
    pool: PgPool,
    listener: PgListener,
    tx: broadcast::Sender<Notice>,
) {
    let mut listener = Some(listener);
    let mut backoff = LISTEN_BACKOFF_MIN;
    loop {
        let mut current = match listener.take() {
            Some(l) => l,
            None => match subscribe(&pool).await {
                Ok(l) => {
                    tracing::info!("LISTEN connection re-established");
                    let _ = tx.send(Notice::Queued);
                    l
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot re-establish the LISTEN connection; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
                    continue;
                }
            },
        };
        loop {
            match current.try_recv().await {
                Ok(Some(n)) => {
                    backoff = LISTEN_BACKOFF_MIN;
                    match decode_notice(n.payload()) {
                        Some(notice) => {
                            let _ = tx.send(notice);
                        }
                        None => {
                            tracing::debug!(
                                payload = n.payload(),
                                "unknown notification"
                            )
                        }
                    }
                }
                Ok(None) => {
                    tracing::warn!("LISTEN connection lost and re-established");
                    let _ = tx.send(Notice::Queued);
                }
                Err(error) => {
                    tracing::warn!(%error, "LISTEN connection failed; reconnecting");
                    break;
                }
            }
        }
        drop(current);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
    }
}
