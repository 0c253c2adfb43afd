//! Rows as both backends see them: result rows decoded into records by one
//! set of functions generic over `sqlx::Row`, the status column parsed
//! from its text, and items laid out (kind, position) for inserts. Only the
//! SQL text differs between SQLite and PostgreSQL.

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::records::*;
use super::{StoreError, StoreResult};
use crate::api::ResponseStatus;

/// `response_items.kind` of input items.
pub(super) const INPUT: i16 = 0;
/// `response_items.kind` of output items.
pub(super) const OUTPUT: i16 = 1;

/// Every status, so that the text of each is written once
/// (`ResponseStatus::as_str`); a test's exhaustive match fails to compile
/// when a status is added and not listed.
const STATUSES: [ResponseStatus; 6] = [
    ResponseStatus::Queued,
    ResponseStatus::InProgress,
    ResponseStatus::Completed,
    ResponseStatus::Incomplete,
    ResponseStatus::Failed,
    ResponseStatus::Cancelled,
];

/// A status as stored (its wire name); text this version does not know
/// is a `Query` error naming it.
pub fn parse_status(text: &str) -> StoreResult<ResponseStatus> {
    STATUSES.into_iter().find(|s| s.as_str() == text).ok_or_else(|| {
        StoreError::Query(format!("unknown response status {text:?}"))
    })
}

/// The column types the store reads, on any row whose database decodes
/// them (both backends do): the `Decode`/`Type` bounds are stated once
/// here instead of on every decoder.
pub(super) trait StoreRow {
    /// A NOT NULL text column.
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    /// A nullable text column.
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    /// A NOT NULL integer column.
    fn int(&self, col: &str) -> Result<i64, sqlx::Error>;
    /// A nullable integer column.
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    /// A boolean column (an INTEGER 0/1 on SQLite).
    fn flag(&self, col: &str) -> Result<bool, sqlx::Error>;

    /// A status column.
    fn status(&self, col: &str) -> Result<ResponseStatus, sqlx::Error> {
        parse_status(&self.text(col)?).map_err(|e| sqlx::Error::ColumnDecode {
            index: col.to_string(),
            source: Box::new(e),
        })
    }
}

impl<R> StoreRow for R
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    bool: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, col: &str) -> Result<String, sqlx::Error> {
        self.try_get(col)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(col)
    }
    fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
        self.try_get(col)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(col)
    }
    fn flag(&self, col: &str) -> Result<bool, sqlx::Error> {
        self.try_get(col)
    }
}

/// `id, org_id, org_name, revoked_at` of a key.
pub(super) fn key_record(
    row: &impl StoreRow,
) -> Result<KeyRecord, sqlx::Error> {
    Ok(KeyRecord {
        key_id: row.text("id")?,
        org_id: row.text("org_id")?,
        org_name: row.text("org_name")?,
        revoked: row.opt_int("revoked_at")?.is_some(),
    })
}

/// `id, org_name, name, created_at, revoked_at` of a key.
pub(super) fn key_info(row: &impl StoreRow) -> Result<KeyInfo, sqlx::Error> {
    Ok(KeyInfo {
        key_id: row.text("id")?,
        org_name: row.text("org_name")?,
        name: row.opt_text("name")?,
        created_at: row.int("created_at")?,
        revoked_at: row.opt_int("revoked_at")?,
    })
}

/// The key `create_key` just wrote, as `list_keys` would read it back.
pub(super) fn created_key(
    org_name: &str,
    label: Option<&str>,
    key_id: &str,
    now: i64,
) -> KeyInfo {
    KeyInfo {
        key_id: key_id.to_string(),
        org_name: org_name.to_string(),
        name: label.map(str::to_string),
        created_at: now,
        revoked_at: None,
    }
}

/// A fresh organization id, used when `create_key` names a new one.
pub(super) fn new_org_id() -> String {
    format!("org_{}", crate::ids::random_hex(12))
}

/// `body, status, background, lease_owner` of a response.
pub(super) fn stored_response(
    row: &impl StoreRow,
) -> Result<StoredResponse, sqlx::Error> {
    Ok(StoredResponse {
        body: row.text("body")?,
        status: row.status("status")?,
        background: row.flag("background")?,
        lease_owner: row.opt_text("lease_owner")?,
    })
}

/// `id, org_id, body, run_request` of a claimed run, whose event log
/// continues at `next_seq`.
pub(super) fn claimed_run(
    row: &impl StoreRow,
    next_seq: i64,
) -> Result<ClaimedRun, sqlx::Error> {
    Ok(ClaimedRun {
        id: row.text("id")?,
        org_id: row.text("org_id")?,
        body: row.text("body")?,
        run_request: row.opt_text("run_request")?.unwrap_or_default(),
        next_seq,
    })
}

/// `id, lease_owner, body, next` of a run whose lease expired.
pub(super) fn expired_run(
    row: &impl StoreRow,
) -> Result<ExpiredRun, sqlx::Error> {
    Ok(ExpiredRun {
        id: row.text("id")?,
        lease_owner: row.opt_text("lease_owner")?.unwrap_or_default(),
        body: row.text("body")?,
        next_seq: row.int("next")?,
    })
}

/// `id, body, metadata, created_at` of a stored chat completion.
pub(super) fn stored_chat(
    row: &impl StoreRow,
) -> Result<StoredChatCompletion, sqlx::Error> {
    Ok(StoredChatCompletion {
        id: row.text("id")?,
        body: row.text("body")?,
        metadata: row.text("metadata")?,
        created_at: row.int("created_at")?,
    })
}

/// `seq, body` of an event.
pub(super) fn event_row(row: &impl StoreRow) -> Result<EventRow, sqlx::Error> {
    Ok(EventRow { seq: row.int("seq")?, body: row.text("body")? })
}

/// `item_id, body` of items; rows with NULL columns (a chained response
/// without items, from the LEFT JOIN) are skipped.
pub(super) fn items<R: StoreRow>(rows: &[R]) -> Result<Items, sqlx::Error> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        if let (Some(id), Some(body)) =
            (row.opt_text("item_id")?, row.opt_text("body")?)
        {
            out.push(ItemRow { id, body });
        }
    }
    Ok(out)
}

/// Decodes every row with `decode`.
pub(super) fn all<R, T>(
    rows: &[R],
    decode: impl Fn(&R) -> Result<T, sqlx::Error>,
) -> Result<Vec<T>, sqlx::Error> {
    rows.iter().map(decode).collect()
}

/// Input then output items of one response as `(kind, position, item)`;
/// positions count from 0 per kind.
pub(super) fn positioned<'a>(
    input: &'a [ItemRow],
    output: &'a [ItemRow],
) -> impl Iterator<Item = (i16, i64, &'a ItemRow)> {
    let input = input.iter().enumerate().map(|(p, it)| (INPUT, p as i64, it));
    let output =
        output.iter().enumerate().map(|(p, it)| (OUTPUT, p as i64, it));
    input.chain(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_parses_back_from_its_stored_text() {
        use ResponseStatus::*;
        for s in STATUSES {
            match s {
                Queued | InProgress | Completed | Incomplete | Failed
                | Cancelled => {}
            }
            assert_eq!(parse_status(s.as_str()).ok(), Some(s));
        }
    }

    #[test]
    fn unknown_status_text_is_a_query_error_naming_it() {
        let e = parse_status("paused").err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("database error: unknown response status \"paused\"")
        );
    }

    #[test]
    fn items_are_positioned_per_kind_inputs_first() {
        let item = |id: &str| ItemRow { id: id.into(), body: "{}".into() };
        let (input, output) = ([item("a"), item("b")], [item("c")]);
        let got: Vec<(i16, i64, &str)> = positioned(&input, &output)
            .map(|(k, p, it)| (k, p, it.id.as_str()))
            .collect();
        assert_eq!(got, [(INPUT, 0, "a"), (INPUT, 1, "b"), (OUTPUT, 0, "c")]);
    }
}
