//! The one wrapper every handler body runs in (dropshot has no
//! middleware; omicron's handlers call `instrument_dropshot_handler` the
//! same way): it times the request, counts it in the HTTP metrics and
//! writes its one access line, whatever the outcome: a 401, a validation
//! error, a stream, or a client that left mid-request (logged as 499).

use std::time::Instant;

use dropshot::{HttpResponse, HttpResponseError, RequestContext};
use tracing::field;

use super::ServerState;
use crate::metrics::notes::Notes;

/// The status logged for a request whose client left before the answer
/// (nginx's convention).
const CLIENT_CLOSED: u16 = 499;

/// Runs a handler body, then records it; see the module docs.
pub async fn instrument<T, E, F>(
    rqctx: &RequestContext<ServerState>,
    operation: &'static str,
    body: F,
) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
    T: HttpResponse,
    E: HttpResponseError,
{
    let mut pending = Pending {
        rqctx,
        operation,
        started: Instant::now(),
        notes: std::sync::Arc::default(),
        done: false,
    };
    let out = pending.notes.clone().scope(body).await;
    let status = match &out {
        Ok(t) => t.status_code().as_u16(),
        Err(e) => e.status_code().as_u16(),
    };
    pending.record(status);
    out
}

/// A request being handled; recorded once, when it answers or, if its
/// future is dropped first (the client left), when dropped.
struct Pending<'a> {
    rqctx: &'a RequestContext<ServerState>,
    operation: &'static str,
    started: Instant,
    notes: std::sync::Arc<Notes>,
    done: bool,
}

impl Pending<'_> {
    fn record(&mut self, status: u16) {
        self.done = true;
        let elapsed = self.started.elapsed();
        let n = self.notes.lock();
        let provider = n.provider.as_deref().unwrap_or("");
        self.rqctx.context().engine.metrics().http_request(
            self.operation,
            status,
            provider,
            elapsed,
        );
        let req = &self.rqctx.request;
        tracing::info!(
            target: "maniac::access",
            method = %req.method(),
            path = %req.uri().path(),
            operation = %self.operation,
            status,
            duration_ms = elapsed.as_micros() as f64 / 1000.0,
            request_id = %self.rqctx.request_id,
            org = shown(&n.org),
            key_id = shown(&n.key_id),
            model = shown(&n.model),
            provider = shown(&n.provider),
            id = shown(&n.object_id),
            input_tokens = n.input_tokens,
            output_tokens = n.output_tokens,
            ttft_ms = n
                .time_to_first_token
                .map(|d| d.as_micros() as f64 / 1000.0),
            streamed = n.streamed,
            "request"
        );
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.record(CLIENT_CLOSED);
        }
    }
}

/// An optional string field, shown without quotes when present.
fn shown(v: &Option<String>) -> Option<field::DisplayValue<&str>> {
    v.as_deref().map(field::display)
}
