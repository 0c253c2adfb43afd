//! The public contract: the dropshot API trait and every wire type. This is
//! the only place the API is written down in Rust; `openapi.json` is
//! rendered from it (`cargo xtask openapi generate`).

pub mod body;
pub mod budget;
pub mod chat;
pub mod chat_completion;
pub mod compact;
pub mod error;
pub mod events;
pub mod item_events;
pub mod items;
pub mod models;
pub mod query;
pub mod spec;
pub mod types;

use dropshot::{
    HttpError, HttpResponseOk, Path, Query, RequestContext, WebsocketUpgrade,
};

pub use body::JsonOrSse;
pub use budget::{BudgetedBody, BudgetedBytes};
pub use chat::*;
pub use chat_completion::*;
pub use compact::*;
pub use error::{ApiError, ErrorObject};
pub use events::*;
pub use item_events::*;
pub use items::*;
pub use models::*;
pub use query::{
    ChatListQuery, ChatMessagesQuery, InputItemsQuery, ResponseViewQuery,
};
pub use types::*;

/// The answer of an accepted WebSocket upgrade (`101 Switching
/// Protocols`). Dropshot names it only through `WebsocketEndpointResult`.
pub type SwitchingToWebsocket =
    <dropshot::WebsocketEndpointResult as Outcome>::Ok;

/// Names the success type of a `Result`.
pub trait Outcome {
    /// The success type.
    type Ok;
}

impl<T, E> Outcome for Result<T, E> {
    type Ok = T;
}

/// Largest accepted request body: 32 MiB (images as data URIs are large).
/// Every body also counts against `[limits] max_inflight_body_bytes`
/// while its request is handled ([`BudgetedBody`]).
pub const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;

/// The Maniac gateway API.
#[dropshot::api_description]
pub trait ManiacApi {
    /// Server state shared by all handlers.
    type Context;

    /// Create a response
    ///
    /// Runs one model call through the provider named by `model`
    /// (`provider/model`). Answers with the `Response` object, or with
    /// server-sent events when `stream` is true (`response.created` …
    /// `response.output_text.delta` × N … `response.completed`). With
    /// `background: true` it returns at once with `status: "queued"`.
    /// Managed tools are not yet supported: a non-empty `tools` list is
    /// rejected.
    #[endpoint {
        method = POST,
        path = "/v1/responses",
        tags = ["responses"],
        request_body_max_bytes = MAX_REQUEST_BYTES,
    }]
    async fn response_create(
        rqctx: RequestContext<Self::Context>,
        body: BudgetedBody<CreateResponse>,
    ) -> Result<JsonOrSse<Response>, ApiError>;

    /// Connect in WebSocket mode
    ///
    /// Upgrades to a WebSocket (authenticated at the handshake: a bad or
    /// missing key is a 401 before the upgrade). Each turn is a
    /// `response.create` text frame carrying the create body (`stream` and
    /// `background` are ignored; `generate: false` only warms the
    /// connection); the server answers every event of the run as one JSON
    /// text frame, exactly the `ResponseStreamEvent`s of a stream. One
    /// response runs at a time; errors are `error` events and keep the
    /// connection. The last response of the connection is kept in memory,
    /// so `store: false` turns can continue with `previous_response_id` and
    /// only the new input. A connection lives at most 60 minutes.
    #[endpoint {
        method = GET,
        path = "/v1/responses",
        tags = ["responses"],
    }]
    async fn response_connect(
        rqctx: RequestContext<Self::Context>,
        websocket: WebsocketUpgrade,
    ) -> Result<SwitchingToWebsocket, ApiError>;

    /// Retrieve a response
    ///
    /// Returns a stored response of your organization: the final object,
    /// or the current snapshot of a background run. With `stream=true` it
    /// replays a background run's events (from `starting_after`, if given)
    /// and then follows the run live until it ends.
    #[endpoint {
        method = GET,
        path = "/v1/responses/{response_id}",
        tags = ["responses"],
    }]
    async fn response_view(
        rqctx: RequestContext<Self::Context>,
        path: Path<ResponsePath>,
        query: Query<ResponseViewQuery>,
    ) -> Result<JsonOrSse<Response>, ApiError>;

    /// Delete a response
    ///
    /// Deletes a stored response and its items. Afterwards it cannot be
    /// retrieved or used as `previous_response_id`.
    #[endpoint {
        method = DELETE,
        path = "/v1/responses/{response_id}",
        tags = ["responses"],
    }]
    async fn response_delete(
        rqctx: RequestContext<Self::Context>,
        path: Path<ResponsePath>,
    ) -> Result<JsonOrSse<ResponseDeleted>, ApiError>;

    /// Compact a conversation, or count its input tokens
    ///
    /// Dropshot cannot route the literal `/v1/responses/compact` and
    /// `/v1/responses/input_tokens` beside `/v1/responses/{response_id}`,
    /// so this one unpublished operation serves both names (any other is
    /// a 405); `openapi.json` documents them as `response_compact` and
    /// `response_input_tokens_count` (see `spec.rs`).
    #[endpoint {
        method = POST,
        path = "/v1/responses/{response_id}",
        tags = ["responses"],
        unpublished = true,
        request_body_max_bytes = MAX_REQUEST_BYTES,
    }]
    async fn response_action(
        rqctx: RequestContext<Self::Context>,
        path: Path<ResponsePath>,
        body: BudgetedBytes,
    ) -> Result<JsonOrSse<ResponseAction>, ApiError>;

    /// Cancel a background response
    ///
    /// Only responses created with `background: true` can be cancelled. A
    /// queued run is cancelled at once; a running one stops its upstream
    /// call and keeps its partial output. Cancelling again returns the same
    /// object.
    #[endpoint {
        method = POST,
        path = "/v1/responses/{response_id}/cancel",
        tags = ["responses"],
    }]
    async fn response_cancel(
        rqctx: RequestContext<Self::Context>,
        path: Path<ResponsePath>,
    ) -> Result<HttpResponseOk<Response>, ApiError>;

    /// List input items
    ///
    /// Lists the input items of a stored response (including those
    /// inherited through `previous_response_id`), newest first by default,
    /// with cursor paging through `after`.
    #[endpoint {
        method = GET,
        path = "/v1/responses/{response_id}/input_items",
        tags = ["responses"],
    }]
    async fn response_input_items_list(
        rqctx: RequestContext<Self::Context>,
        path: Path<ResponsePath>,
        query: Query<InputItemsQuery>,
    ) -> Result<HttpResponseOk<ResponseItemList>, ApiError>;

    /// Create a chat completion
    ///
    /// Runs one model call through the provider named by `model`
    /// (`provider/model`) with OpenAI's Chat Completions semantics: tools,
    /// `n` choices, structured output, log probabilities. With `stream`
    /// the answer is `chat.completion.chunk` server-sent events ending
    /// with `data: [DONE]`. With `store: true` it can be read back.
    #[endpoint {
        method = POST,
        path = "/v1/chat/completions",
        tags = ["chat"],
        request_body_max_bytes = MAX_REQUEST_BYTES,
    }]
    async fn chat_completion_create(
        rqctx: RequestContext<Self::Context>,
        body: BudgetedBody<CreateChatCompletion>,
    ) -> Result<JsonOrSse<ChatCompletion>, ApiError>;

    /// List stored chat completions
    ///
    /// Completions created with `store: true` by your organization, oldest
    /// first by default, with cursor paging through `after` and filters by
    /// `model` and `metadata[key]=value`.
    #[endpoint {
        method = GET,
        path = "/v1/chat/completions",
        tags = ["chat"],
    }]
    async fn chat_completion_list(
        rqctx: RequestContext<Self::Context>,
        query: Query<ChatListQuery>,
    ) -> Result<HttpResponseOk<ChatCompletionList>, ApiError>;

    /// Retrieve a stored chat completion
    #[endpoint {
        method = GET,
        path = "/v1/chat/completions/{completion_id}",
        tags = ["chat"],
    }]
    async fn chat_completion_view(
        rqctx: RequestContext<Self::Context>,
        path: Path<ChatCompletionPath>,
    ) -> Result<HttpResponseOk<ChatCompletion>, ApiError>;

    /// Update a stored chat completion
    ///
    /// Replaces its `metadata`; nothing else can change.
    #[endpoint {
        method = POST,
        path = "/v1/chat/completions/{completion_id}",
        tags = ["chat"],
    }]
    async fn chat_completion_update(
        rqctx: RequestContext<Self::Context>,
        path: Path<ChatCompletionPath>,
        body: BudgetedBody<UpdateChatCompletion>,
    ) -> Result<JsonOrSse<ChatCompletion>, ApiError>;

    /// Delete a stored chat completion
    #[endpoint {
        method = DELETE,
        path = "/v1/chat/completions/{completion_id}",
        tags = ["chat"],
    }]
    async fn chat_completion_delete(
        rqctx: RequestContext<Self::Context>,
        path: Path<ChatCompletionPath>,
    ) -> Result<HttpResponseOk<ChatCompletionDeleted>, ApiError>;

    /// List the messages of a stored chat completion
    ///
    /// The request messages, in order by default, with cursor paging.
    #[endpoint {
        method = GET,
        path = "/v1/chat/completions/{completion_id}/messages",
        tags = ["chat"],
    }]
    async fn chat_completion_messages_list(
        rqctx: RequestContext<Self::Context>,
        path: Path<ChatCompletionPath>,
        query: Query<ChatMessagesQuery>,
    ) -> Result<HttpResponseOk<ChatMessageList>, ApiError>;

    /// List models
    ///
    /// Lists the models of every configured provider, as `provider/model`
    /// ids (`owned_by` is the provider). A model that is not listed can
    /// still be called.
    #[endpoint {
        method = GET,
        path = "/v1/models",
        tags = ["models"],
    }]
    async fn model_list(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<HttpResponseOk<ModelList>, ApiError>;

    /// Retrieve a model
    ///
    /// One model by its `provider/model` id, whose `/` is percent-encoded
    /// in the path (`/v1/models/echo%2Fecho`).
    #[endpoint {
        method = GET,
        path = "/v1/models/{model}",
        tags = ["models"],
    }]
    async fn model_view(
        rqctx: RequestContext<Self::Context>,
        path: Path<ModelPath>,
    ) -> Result<HttpResponseOk<Model>, ApiError>;

    /// The same model lookup with the id's `/` left unencoded.
    #[endpoint {
        method = GET,
        path = "/v1/models/{model}/{rest:.*}",
        unpublished = true,
    }]
    async fn model_view_raw(
        rqctx: RequestContext<Self::Context>,
        path: Path<ModelRawPath>,
    ) -> Result<HttpResponseOk<Model>, ApiError>;

    /// Liveness probe (not part of the public API).
    ///
    /// 200 `{"status": "ok"}` as long as the process answers. It never
    /// touches the database, so a database outage does not make an
    /// orchestrator restart every replica; use `/readyz` to route traffic.
    #[endpoint {
        method = GET,
        path = "/healthz",
        unpublished = true,
    }]
    async fn health_view(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<HttpResponseOk<Health>, HttpError>;

    /// Readiness probe (not part of the public API).
    ///
    /// 200 `{"status": "ok"}` when the database answers and every migration
    /// of this version is applied; otherwise 503 `service_unavailable` in
    /// the OpenAI error shape, so a load balancer sends no traffic here
    /// until it can be served.
    #[endpoint {
        method = GET,
        path = "/readyz",
        unpublished = true,
    }]
    async fn readiness_view(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<HttpResponseOk<Health>, ApiError>;
    /// Prometheus metrics in the text format (not part of the public API).
    #[endpoint {
        method = GET,
        path = "/metrics",
        unpublished = true,
    }]
    async fn metrics_view(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<http::Response<dropshot::Body>, ApiError>;
}

/// Health and readiness probe answer.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}
