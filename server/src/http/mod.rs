//! The API trait's implementation. Every handler has the same shape:
//! authenticate, call the engine, map the result. No business logic here.

mod auth;
mod error;
mod instrument;
pub mod websocket;

use std::convert::Infallible;

use dropshot::{
    Body, HttpError, HttpResponseOk, Path, Query, RequestContext, TypedBody,
    WebsocketUpgrade,
};
use futures::StreamExt;
use http_body::Frame;
use http_body_util::StreamBody;
use tokio_stream::wrappers::ReceiverStream;

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
    /// How `/metrics` is answered here.
    pub metrics: Exposition,
}

/// The implementation of [`ManiacApi`].
pub enum ManiacApiImpl {}

/// Engine replies as HTTP answers; errors that carry headers (a 429's
/// Retry-After) are answered through `JsonOrSse::Error`.
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
            let frames = ReceiverStream::new(rx).map(move |b| {
                let _ = &open;
                Ok::<_, Infallible>(Frame::data(b))
            });
            Ok(JsonOrSse::Sse(Body::wrap(StreamBody::new(frames))))
        }
        Err(e) if e.retry_after.is_some() => Ok(JsonOrSse::Error(e)),
        Err(e) => Err(e),
    }
}

impl ManiacApi for ManiacApiImpl {
    type Context = ServerState;

    async fn response_create(
        rqctx: RequestContext<ServerState>,
        body: TypedBody<CreateResponse>,
    ) -> Result<JsonOrSse<Response>, ApiError> {
        instrument(&rqctx, "response_create", async {
            let caller = auth::authenticate(&rqctx).await?;
            let ctx = rqctx.context();
            answer(ctx, ctx.engine.create(&caller, body.into_inner()).await)
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
            let caller = auth::authenticate(&rqctx).await?;
            let id = path.into_inner().response_id;
            let ctx = rqctx.context();
            answer(
                ctx,
                ctx.engine.view(&caller, &id, &query.into_inner()).await,
            )
        })
        .await
    }

    async fn response_delete(
        rqctx: RequestContext<ServerState>,
        path: Path<ResponsePath>,
    ) -> Result<HttpResponseOk<ResponseDeleted>, ApiError> {
        instrument(&rqctx, "response_delete", async {
            let caller = auth::authenticate(&rqctx).await?;
            let id = path.into_inner().response_id;
            Ok(HttpResponseOk(
                rqctx.context().engine.delete(&caller, &id).await?,
            ))
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
        body: TypedBody<CreateChatCompletion>,
    ) -> Result<JsonOrSse<ChatCompletion>, ApiError> {
        instrument(&rqctx, "chat_completion_create", async {
            let caller = auth::authenticate(&rqctx).await?;
            let ctx = rqctx.context();
            answer(
                ctx,
                ctx.engine.chat_create(&caller, body.into_inner()).await,
            )
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
        body: TypedBody<UpdateChatCompletion>,
    ) -> Result<HttpResponseOk<ChatCompletion>, ApiError> {
        instrument(&rqctx, "chat_completion_update", async {
            let caller = auth::authenticate(&rqctx).await?;
            let id = path.into_inner().completion_id;
            let engine = &rqctx.context().engine;
            let c = engine.chat_update(&caller, &id, body.into_inner()).await?;
            Ok(HttpResponseOk(c))
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
        instrument(&rqctx, "health_view", async {
            if rqctx.context().readiness.ready().await {
                Ok(HttpResponseOk(Health { status: "ok".into() }))
            } else {
                Err(HttpError::for_unavail(None, "database unavailable".into()))
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
