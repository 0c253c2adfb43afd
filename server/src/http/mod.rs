//! The API trait's implementation. Every handler has the same shape:
//! authenticate, call the engine, map the result. No business logic here.

mod auth;
mod error;
mod instrument;
pub mod keepalive;
pub mod not_allowed;
pub mod websocket;

use std::convert::Infallible;

use dropshot::{
    Body, HttpError, HttpResponseOk, Path, Query, RequestContext,
    WebsocketUpgrade,
};
use futures::StreamExt;
use http_body::Frame;
use http_body_util::StreamBody;

use crate::api::*;
use crate::auth::KeyCache;
use crate::engine::{Engine, EngineError, Reply};
use crate::metrics::exposition::Exposition;
use instrument::instrument;

/// Shared state of the HTTP handlers.
pub struct ServerState {
    /// The engine.
    pub engine: Engine,
    /// API key lookups.
    pub keys: KeyCache,
    /// Readiness probe.
    pub readiness: crate::health::Readiness,
    /// SHA-256 of the internal service key, if configured.
    pub internal_key_hash: Option<String>,
    /// Open WebSocket connections (closed and drained at shutdown).
    pub sockets: websocket::Connections,
    /// Limits of a WebSocket connection.
    pub socket_limits: websocket::Limits,
    /// Silence after which an SSE stream sends a keep-alive comment.
    pub sse_keepalive: std::time::Duration,
    /// Request body bytes in flight, bounded.
    pub body_budget: crate::api::budget::BodyBudget,
    /// How `/metrics` is answered here.
    pub metrics: Exposition,
}

impl crate::api::budget::BudgetSource for ServerState {
    fn body_budget(&self) -> &crate::api::budget::BodyBudget {
        &self.body_budget
    }
}

/// A body admitted under the byte budget (its permit held until the
/// handler returns), or the 503 to answer, with `Retry-After`.
macro_rules! admit {
    ($body:expr) => {
        match $body.admit() {
            Ok(admitted) => admitted,
            Err(refused) => return Ok(JsonOrSse::Error(refused)),
        }
    };
}

/// The implementation of [`ManiacApi`].
pub enum ManiacApiImpl {}

/// Engine replies as HTTP answers (streams counted open, with keep-alives
/// after `[streaming] keepalive_secs` of silence); errors that carry
/// headers (a 429's Retry-After, a 405's Allow) are answered through
/// `JsonOrSse::Error`.
fn answer<T>(
    ctx: &ServerState,
    r: Result<Reply<T>, EngineError>,
) -> Result<JsonOrSse<T>, ApiError> {
    match r.map_err(ApiError::from) {
        Ok(Reply::Json(resp)) => Ok(JsonOrSse::Json(*resp)),
        Ok(Reply::Encoded(json)) => Ok(JsonOrSse::Encoded(json)),
        Ok(Reply::Stream(rx)) => {
            crate::metrics::notes::note(|n| n.streamed = true);
            // Counted open until the body (and so this closure) is dropped.
            let open = ctx.engine.metrics().sse_stream();
            let frames = keepalive::KeepAlive::new(rx, ctx.sse_keepalive).map(
                move |b| {
                    let _ = &open;
                    Ok::<_, Infallible>(Frame::data(b))
                },
            );
            Ok(JsonOrSse::Sse(Body::wrap(StreamBody::new(frames))))
        }
        Err(e) if e.retry_after.is_some() || e.allow.is_some() => {
            Ok(JsonOrSse::Error(e))
        }
        Err(e) => Err(e),
    }
}

/// `/v1/responses/compact` and `/input_tokens` share the route of a
/// response id; they take only POST.
fn dispatched_name(id: &str, method: &str) -> Option<ApiError> {
    use crate::api::error::Allow;
    match not_allowed::response_item_allow(id) {
        Allow::Post => Some(ApiError::method_not_allowed(method, Allow::Post)),
        _ => None,
    }
}

/// A body of a route that serves several operations, rejected as dropshot
/// rejects a typed body: the same 400s.
fn parse_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<T, ApiError> {
    let error = |e: &dyn std::fmt::Display| {
        crate::api::error::body_error(&e.to_string())
    };
    let mut json = serde_json::Deserializer::from_slice(body);
    let value =
        serde_path_to_error::deserialize(&mut json).map_err(|e| error(&e))?;
    json.end().map_err(|e| error(&e))?;
    Ok(value)
}

impl ManiacApi for ManiacApiImpl {
    type Context = ServerState;

    async fn response_create(
        rqctx: RequestContext<ServerState>,
        body: BudgetedBody<CreateResponse>,
    ) -> Result<JsonOrSse<Response>, ApiError> {
        instrument(&rqctx, "response_create", async {
            let (body, _permit) = admit!(body);
            let caller = auth::authenticate(&rqctx).await?;
            let ctx = rqctx.context();
            answer(ctx, ctx.engine.create(&caller, body).await)
        })
        .await
    }

    async fn response_connect(
        rqctx: RequestContext<ServerState>,
        upgrade: WebsocketUpgrade,
    ) -> Result<SwitchingToWebsocket, ApiError> {
        instrument(&rqctx, "response_connect", async {
            let caller = auth::authenticate(&rqctx).await?;
            let ctx = rqctx.context();
            let (engine, limits) = (ctx.engine.clone(), ctx.socket_limits);
            let registered = ctx.sockets.enter();
            let open = ctx.engine.metrics().websocket();
            tracing::info!(
                request_id = %caller.request_id,
                org = %caller.org_id,
                "websocket connect"
            );
            let serving = upgrade.handle(move |conn| async move {
                let _open = open;
                websocket::serve(engine, caller, conn, limits, registered)
                    .await;
                Ok(())
            });
            serving.map_err(ApiError::from)
        })
        .await
    }

    async fn response_view(
        rqctx: RequestContext<ServerState>,
        path: Path<ResponsePath>,
        query: Query<ResponseViewQuery>,
    ) -> Result<JsonOrSse<Response>, ApiError> {
        instrument(&rqctx, "response_view", async {
            let id = path.into_inner().response_id;
            if let Some(e) = dispatched_name(&id, "GET") {
                return Ok(JsonOrSse::Error(e));
            }
            let caller = auth::authenticate(&rqctx).await?;
            let ctx = rqctx.context();
            let reply =
                ctx.engine.view(&caller, &id, &query.into_inner()).await;
            answer(ctx, reply)
        })
        .await
    }

    async fn response_delete(
        rqctx: RequestContext<ServerState>,
        path: Path<ResponsePath>,
    ) -> Result<JsonOrSse<ResponseDeleted>, ApiError> {
        instrument(&rqctx, "response_delete", async {
            let id = path.into_inner().response_id;
            if let Some(e) = dispatched_name(&id, "DELETE") {
                return Ok(JsonOrSse::Error(e));
            }
            let caller = auth::authenticate(&rqctx).await?;
            let engine = &rqctx.context().engine;
            Ok(JsonOrSse::Json(engine.delete(&caller, &id).await?))
        })
        .await
    }

    async fn response_action(
        rqctx: RequestContext<ServerState>,
        path: Path<ResponsePath>,
        body: BudgetedBytes,
    ) -> Result<JsonOrSse<ResponseAction>, ApiError> {
        // The name first: any other is a 405, whatever the body.
        let name = path.into_inner().response_id;
        let operation = match name.as_str() {
            "compact" => "response_compact",
            "input_tokens" => "response_input_tokens_count",
            _ => "response_action",
        };
        instrument(&rqctx, operation, async {
            let (body, _permit) = admit!(body);
            if operation == "response_action" {
                return Ok(JsonOrSse::Error(ApiError::method_not_allowed(
                    "POST",
                    not_allowed::response_item_allow(&name),
                )));
            }
            let caller = auth::authenticate(&rqctx).await?;
            let engine = &rqctx.context().engine;
            let body = body.as_bytes();
            let action = if name == "compact" {
                ResponseAction::Compacted(
                    engine.compact(&caller, parse_body(body)?).await?,
                )
            } else {
                ResponseAction::InputTokens(
                    engine
                        .count_input_tokens(&caller, parse_body(body)?)
                        .await?,
                )
            };
            Ok(JsonOrSse::Json(action))
        })
        .await
    }

    async fn response_cancel(
        rqctx: RequestContext<ServerState>,
        path: Path<ResponsePath>,
    ) -> Result<HttpResponseOk<Response>, ApiError> {
        instrument(&rqctx, "response_cancel", async {
            let caller = auth::authenticate(&rqctx).await?;
            let id = path.into_inner().response_id;
            Ok(HttpResponseOk(
                rqctx.context().engine.cancel(&caller, &id).await?,
            ))
        })
        .await
    }

    async fn response_input_items_list(
        rqctx: RequestContext<ServerState>,
        path: Path<ResponsePath>,
        query: Query<InputItemsQuery>,
    ) -> Result<HttpResponseOk<ResponseItemList>, ApiError> {
        instrument(&rqctx, "response_input_items_list", async {
            let caller = auth::authenticate(&rqctx).await?;
            let id = path.into_inner().response_id;
            let q = query.into_inner();
            Ok(HttpResponseOk(
                rqctx.context().engine.input_items(&caller, &id, &q).await?,
            ))
        })
        .await
    }

    async fn chat_completion_create(
        rqctx: RequestContext<ServerState>,
        body: BudgetedBody<CreateChatCompletion>,
    ) -> Result<JsonOrSse<ChatCompletion>, ApiError> {
        instrument(&rqctx, "chat_completion_create", async {
            let (body, _permit) = admit!(body);
            let caller = auth::authenticate(&rqctx).await?;
            let ctx = rqctx.context();
            answer(ctx, ctx.engine.chat_create(&caller, body).await)
        })
        .await
    }

    async fn chat_completion_list(
        rqctx: RequestContext<ServerState>,
        query: Query<ChatListQuery>,
    ) -> Result<HttpResponseOk<ChatCompletionList>, ApiError> {
        instrument(&rqctx, "chat_completion_list", async {
            let caller = auth::authenticate(&rqctx).await?;
            let engine = &rqctx.context().engine;
            let list = engine.chat_list(&caller, &query.into_inner()).await?;
            Ok(HttpResponseOk(list))
        })
        .await
    }

    async fn chat_completion_view(
        rqctx: RequestContext<ServerState>,
        path: Path<ChatCompletionPath>,
    ) -> Result<HttpResponseOk<ChatCompletion>, ApiError> {
        instrument(&rqctx, "chat_completion_view", async {
            let caller = auth::authenticate(&rqctx).await?;
            let id = path.into_inner().completion_id;
            let engine = &rqctx.context().engine;
            Ok(HttpResponseOk(engine.chat_view(&caller, &id).await?))
        })
        .await
    }

    async fn chat_completion_update(
        rqctx: RequestContext<ServerState>,
        path: Path<ChatCompletionPath>,
        body: BudgetedBody<UpdateChatCompletion>,
    ) -> Result<JsonOrSse<ChatCompletion>, ApiError> {
        instrument(&rqctx, "chat_completion_update", async {
            let (body, _permit) = admit!(body);
            let caller = auth::authenticate(&rqctx).await?;
            let id = path.into_inner().completion_id;
            let engine = &rqctx.context().engine;
            let c = engine.chat_update(&caller, &id, body).await?;
            Ok(JsonOrSse::Json(c))
        })
        .await
    }

    async fn chat_completion_delete(
        rqctx: RequestContext<ServerState>,
        path: Path<ChatCompletionPath>,
    ) -> Result<HttpResponseOk<ChatCompletionDeleted>, ApiError> {
        instrument(&rqctx, "chat_completion_delete", async {
            let caller = auth::authenticate(&rqctx).await?;
            let id = path.into_inner().completion_id;
            let engine = &rqctx.context().engine;
            Ok(HttpResponseOk(engine.chat_delete(&caller, &id).await?))
        })
        .await
    }

    async fn chat_completion_messages_list(
        rqctx: RequestContext<ServerState>,
        path: Path<ChatCompletionPath>,
        query: Query<ChatMessagesQuery>,
    ) -> Result<HttpResponseOk<ChatMessageList>, ApiError> {
        instrument(&rqctx, "chat_completion_messages_list", async {
            let caller = auth::authenticate(&rqctx).await?;
            let id = path.into_inner().completion_id;
            let engine = &rqctx.context().engine;
            let page =
                engine.chat_messages(&caller, &id, &query.into_inner()).await?;
            Ok(HttpResponseOk(page))
        })
        .await
    }

    async fn model_list(
        rqctx: RequestContext<ServerState>,
    ) -> Result<HttpResponseOk<ModelList>, ApiError> {
        instrument(&rqctx, "model_list", async {
            auth::authenticate(&rqctx).await?;
            Ok(HttpResponseOk(rqctx.context().engine.models().await))
        })
        .await
    }

    async fn model_view(
        rqctx: RequestContext<ServerState>,
        path: Path<ModelPath>,
    ) -> Result<HttpResponseOk<Model>, ApiError> {
        instrument(&rqctx, "model_view", async {
            auth::authenticate(&rqctx).await?;
            let raw = path.into_inner().model;
            // The id's `/` arrives percent-encoded, as the SDKs send it.
            let id =
                percent_encoding::percent_decode_str(&raw).decode_utf8_lossy();
            Ok(HttpResponseOk(rqctx.context().engine.model(&id).await?))
        })
        .await
    }

    async fn model_view_raw(
        rqctx: RequestContext<ServerState>,
        path: Path<ModelRawPath>,
    ) -> Result<HttpResponseOk<Model>, ApiError> {
        instrument(&rqctx, "model_view_raw", async {
            auth::authenticate(&rqctx).await?;
            let p = path.into_inner();
            // Dropshot decodes `%2F` before routing, so an encoded id can land
            // here too, with nothing after it.
            let rest: Vec<&str> = p
                .rest
                .iter()
                .map(String::as_str)
                .filter(|s| !s.is_empty())
                .collect();
            let id = if rest.is_empty() {
                p.model
            } else {
                format!("{}/{}", p.model, rest.join("/"))
            };
            Ok(HttpResponseOk(rqctx.context().engine.model(&id).await?))
        })
        .await
    }

    async fn health_view(
        rqctx: RequestContext<ServerState>,
    ) -> Result<HttpResponseOk<Health>, HttpError> {
        // Liveness: the process answers; the database is /readyz's.
        instrument(&rqctx, "health_view", async {
            Ok(HttpResponseOk(Health { status: "ok".into() }))
        })
        .await
    }

    async fn readiness_view(
        rqctx: RequestContext<ServerState>,
    ) -> Result<HttpResponseOk<Health>, ApiError> {
        instrument(&rqctx, "readiness_view", async {
            match rqctx.context().readiness.check().await {
                Ok(()) => Ok(HttpResponseOk(Health { status: "ok".into() })),
                Err(e) => {
                    tracing::warn!(error = %e, "not ready");
                    Err(ApiError::new(
                        503,
                        "server_error",
                        e.public_message(),
                        None,
                        Some("service_unavailable"),
                    ))
                }
            }
        })
        .await
    }

    async fn metrics_view(
        rqctx: RequestContext<ServerState>,
    ) -> Result<http::Response<Body>, ApiError> {
        instrument(&rqctx, "metrics_view", async {
            rqctx.context().metrics.on_main(rqctx.request.headers())
        })
        .await
    }
}
