//! The byte budget of request bodies in flight (`[limits]
//! max_inflight_body_bytes`): a body is admitted only once its bytes are
//! reserved, from `Content-Length` (the largest accepted body when there
//! is none), before anything of it is read. Past the budget the request is
//! answered 503 `server_overloaded` with `Retry-After` and its body is
//! never buffered, so a flood of large requests cannot exhaust memory.
//!
//! [`BudgetedBody`] wraps dropshot's `TypedBody`: an extractor that fails
//! cannot answer with headers in the OpenAI error shape (dropshot renders
//! extractor errors without them), and a shared extractor that does not
//! fail would let `TypedBody` buffer the body anyway. So the reservation
//! runs in the body extractor itself, then delegates; its spec metadata is
//! `TypedBody`'s, so `openapi.json` does not change.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use dropshot::{
    ApiEndpointBodyContentType, ExclusiveExtractor, ExtractorMetadata,
    HttpError, RequestContext, ServerContext, TypedBody, UntypedBody,
};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{ApiError, MAX_REQUEST_BYTES};

/// Seconds a refused client is asked to wait.
pub const RETRY_AFTER_SECS: u32 = 1;

/// The budget: one semaphore permit per byte.
#[derive(Debug)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    limit: usize,
}

/// Bytes of a body held while its request is handled; given back when
/// dropped.
#[derive(Debug)]
pub struct BodyPermit(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl BodyBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        let limit = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        BodyBudget { bytes: Arc::new(Semaphore::new(limit)), limit }
    }

    /// Reserves `bytes`, or says why not (answer it as it is).
    pub fn reserve(&self, bytes: usize) -> Result<BodyPermit, ApiError> {
        let n = u32::try_from(bytes).unwrap_or(u32::MAX);
        match self.bytes.clone().try_acquire_many_owned(n) {
            Ok(p) => Ok(BodyPermit(Some(p))),
            Err(_) => Err(self.overloaded()),
        }
    }

    /// Bytes free now (for tests and logs).
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    fn overloaded(&self) -> ApiError {
        let mut e = ApiError::new(
            503,
            "server_error",
            format!(
                "The gateway is handling as many request bytes as it may \
                 hold at once ({} MiB, `[limits] max_inflight_body_bytes`). \
                 Retry in {RETRY_AFTER_SECS} s.",
                self.limit >> 20
            ),
            None,
            Some("server_overloaded"),
        );
        e.retry_after = Some(RETRY_AFTER_SECS);
        e
    }
}

/// Where an extractor finds the budget in the server's context.
pub trait BudgetSource {
    /// The budget of this server.
    fn body_budget(&self) -> &BodyBudget;
}

/// Finds the budget of a context of any type (extractors are generic over
/// it); the server registers how with [`register_context`].
static LOOKUP: std::sync::OnceLock<fn(&dyn Any) -> Option<&BodyBudget>> =
    std::sync::OnceLock::new();

/// Tells extractors how to find the budget in contexts of type `C`.
pub fn register_context<C: BudgetSource + 'static>() {
    let _ = LOOKUP
        .set(|any| any.downcast_ref::<C>().map(BudgetSource::body_budget));
}

/// A JSON body admitted under the budget, or the refusal to answer.
pub enum BudgetedBody<T> {
    /// The body, and its bytes held until the permit is dropped.
    Admitted(T, BodyPermit),
    /// Past the budget: 503 with `Retry-After` (the body was not read).
    Refused(ApiError),
}

impl<T> BudgetedBody<T> {
    /// The body and its permit, or the answer for a refusal.
    pub fn admit(self) -> Result<(T, BodyPermit), ApiError> {
        match self {
            BudgetedBody::Admitted(body, permit) => Ok((body, permit)),
            BudgetedBody::Refused(e) => Err(e),
        }
    }
}

/// What a request with these headers must reserve: its `Content-Length`
/// (capped: a larger body is refused by dropshot anyway), else the
/// largest accepted body.
fn reservation(headers: &http::HeaderMap) -> usize {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(MAX_REQUEST_BYTES, |n| {
            usize::try_from(n).unwrap_or(usize::MAX).min(MAX_REQUEST_BYTES)
        })
}

/// Reserves the bytes of a request before its body is read.
fn reserve_for<Context: ServerContext>(
    rqctx: &RequestContext<Context>,
    request: &hyper::Request<dropshot::Body>,
) -> Result<BodyPermit, ApiError> {
    let context: &dyn Any = rqctx.context();
    match LOOKUP.get().and_then(|find| find(context)) {
        Some(b) => b.reserve(reservation(request.headers())),
        // A context without a budget (none registered): unbounded.
        None => Ok(BodyPermit(None)),
    }
}

#[async_trait]
impl<T> ExclusiveExtractor for BudgetedBody<T>
where
    T: JsonSchema + DeserializeOwned + Send + Sync + 'static,
{
    async fn from_request<Context: ServerContext>(
        rqctx: &RequestContext<Context>,
        request: hyper::Request<dropshot::Body>,
    ) -> Result<Self, HttpError> {
        let permit = match reserve_for(rqctx, &request) {
            Ok(p) => p,
            Err(e) => return Ok(BudgetedBody::Refused(e)),
        };
        let body = TypedBody::<T>::from_request(rqctx, request).await?;
        Ok(BudgetedBody::Admitted(body.into_inner(), permit))
    }

    fn metadata(content_type: ApiEndpointBodyContentType) -> ExtractorMetadata {
        <TypedBody<T> as ExclusiveExtractor>::metadata(content_type)
    }
}

/// A raw body admitted under the budget: for the route that serves
/// several operations and reads its body only once it knows which.
pub enum BudgetedBytes {
    /// The body, and its bytes held until the permit is dropped.
    Admitted(UntypedBody, BodyPermit),
    /// Past the budget: 503 with `Retry-After` (the body was not read).
    Refused(ApiError),
}

impl BudgetedBytes {
    /// The body and its permit, or the answer for a refusal.
    pub fn admit(self) -> Result<(UntypedBody, BodyPermit), ApiError> {
        match self {
            BudgetedBytes::Admitted(body, permit) => Ok((body, permit)),
            BudgetedBytes::Refused(e) => Err(e),
        }
    }
}

#[async_trait]
impl ExclusiveExtractor for BudgetedBytes {
    async fn from_request<Context: ServerContext>(
        rqctx: &RequestContext<Context>,
        request: hyper::Request<dropshot::Body>,
    ) -> Result<Self, HttpError> {
        let permit = match reserve_for(rqctx, &request) {
            Ok(p) => p,
            Err(e) => return Ok(BudgetedBytes::Refused(e)),
        };
        let body = UntypedBody::from_request(rqctx, request).await?;
        Ok(BudgetedBytes::Admitted(body, permit))
    }

    fn metadata(content_type: ApiEndpointBodyContentType) -> ExtractorMetadata {
        <UntypedBody as ExclusiveExtractor>::metadata(content_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_come_from_content_length_else_the_maximum() {
        let mut h = http::HeaderMap::new();
        assert_eq!(reservation(&h), MAX_REQUEST_BYTES);
        h.insert(http::header::CONTENT_LENGTH, "1234".parse().unwrap());
        assert_eq!(reservation(&h), 1234);
        h.insert(http::header::CONTENT_LENGTH, "99999999999".parse().unwrap());
        assert_eq!(reservation(&h), MAX_REQUEST_BYTES);
        h.insert(http::header::CONTENT_LENGTH, "nonsense".parse().unwrap());
        assert_eq!(reservation(&h), MAX_REQUEST_BYTES);
    }

    #[test]
    fn the_budget_refuses_past_its_limit_and_gets_bytes_back() {
        let b = BodyBudget::new(100);
        let first = b.reserve(60).expect("fits");
        let e = b.reserve(60).expect_err("past the budget");
        assert_eq!(e.status, 503);
        assert_eq!(e.error.code.as_deref(), Some("server_overloaded"));
        assert_eq!(e.retry_after, Some(RETRY_AFTER_SECS));
        drop(first);
        assert_eq!(b.available(), 100);
        assert!(b.reserve(100).is_ok());
    }
}
