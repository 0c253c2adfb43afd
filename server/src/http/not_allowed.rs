//! 405s in the OpenAI error shape, with `Allow`, for the methods a known
//! path does not take. Dropshot answers those itself, in its own shape and
//! without `Allow`, unless a handler exists: so every missing method of
//! every path gets an unpublished one here (not in the API trait: they
//! are no part of the contract, and a macro writes them).

use dropshot::{ApiDescription, Path, RequestContext};

use super::ServerState;
use crate::api::error::Allow;
use crate::api::{
    ApiError, ChatCompletionPath, JsonOrSse, ModelPath, ModelRawPath,
    ResponsePath,
};

/// The answer of every handler here.
type NotAllowed = Result<JsonOrSse<()>, ApiError>;

fn answer(method: &str, allow: Allow) -> NotAllowed {
    Ok(JsonOrSse::Error(ApiError::method_not_allowed(method, allow)))
}

/// The methods `/v1/responses/{response_id}` takes for this name: the
/// names of the operations it dispatches take POST only.
pub fn response_item_allow(name: &str) -> Allow {
    match name {
        "compact" | "input_tokens" => Allow::Post,
        _ => Allow::GetDelete,
    }
}

/// One unpublished handler per (path, method); `$allow` is the `Allow`
/// value, or a function of the path parameters giving it.
macro_rules! not_allowed {
    ($name:ident, $method:ident, $path:tt, allow = $allow:expr) => {
        #[dropshot::endpoint { method = $method, path = $path, unpublished = true }]
        async fn $name(_rqctx: RequestContext<ServerState>) -> NotAllowed {
            answer(stringify!($method), $allow)
        }
    };
    ($name:ident, $method:ident, $path:tt, $params:ty, allow = $allow:expr) => {
        #[dropshot::endpoint { method = $method, path = $path, unpublished = true }]
        async fn $name(
            _rqctx: RequestContext<ServerState>,
            path: Path<$params>,
        ) -> NotAllowed {
            let allow: fn(&$params) -> Allow = $allow;
            answer(stringify!($method), allow(&path.into_inner()))
        }
    };
}

const RESPONSES: Allow = Allow::GetPost;
const CANCEL: Allow = Allow::Post;
const LISTS: Allow = Allow::Get;
const CHATS: Allow = Allow::GetPost;
const CHAT: Allow = Allow::GetPostDelete;

not_allowed!(responses_put, PUT, "/v1/responses", allow = RESPONSES);
not_allowed!(responses_patch, PATCH, "/v1/responses", allow = RESPONSES);
not_allowed!(responses_delete, DELETE, "/v1/responses", allow = RESPONSES);
not_allowed!(
    response_put,
    PUT,
    "/v1/responses/{response_id}",
    ResponsePath,
    allow = |p| response_item_allow(&p.response_id)
);
not_allowed!(
    response_patch,
    PATCH,
    "/v1/responses/{response_id}",
    ResponsePath,
    allow = |p| response_item_allow(&p.response_id)
);
not_allowed!(
    cancel_get,
    GET,
    "/v1/responses/{response_id}/cancel",
    ResponsePath,
    allow = |_| CANCEL
);
not_allowed!(
    cancel_put,
    PUT,
    "/v1/responses/{response_id}/cancel",
    ResponsePath,
    allow = |_| CANCEL
);
not_allowed!(
    cancel_patch,
    PATCH,
    "/v1/responses/{response_id}/cancel",
    ResponsePath,
    allow = |_| CANCEL
);
not_allowed!(
    cancel_delete,
    DELETE,
    "/v1/responses/{response_id}/cancel",
    ResponsePath,
    allow = |_| CANCEL
);
not_allowed!(
    items_post,
    POST,
    "/v1/responses/{response_id}/input_items",
    ResponsePath,
    allow = |_| LISTS
);
not_allowed!(
    items_put,
    PUT,
    "/v1/responses/{response_id}/input_items",
    ResponsePath,
    allow = |_| LISTS
);
not_allowed!(
    items_patch,
    PATCH,
    "/v1/responses/{response_id}/input_items",
    ResponsePath,
    allow = |_| LISTS
);
not_allowed!(
    items_delete,
    DELETE,
    "/v1/responses/{response_id}/input_items",
    ResponsePath,
    allow = |_| LISTS
);
not_allowed!(chats_put, PUT, "/v1/chat/completions", allow = CHATS);
not_allowed!(chats_patch, PATCH, "/v1/chat/completions", allow = CHATS);
not_allowed!(chats_delete, DELETE, "/v1/chat/completions", allow = CHATS);
not_allowed!(
    chat_put,
    PUT,
    "/v1/chat/completions/{completion_id}",
    ChatCompletionPath,
    allow = |_| CHAT
);
not_allowed!(
    chat_patch,
    PATCH,
    "/v1/chat/completions/{completion_id}",
    ChatCompletionPath,
    allow = |_| CHAT
);
not_allowed!(
    messages_post,
    POST,
    "/v1/chat/completions/{completion_id}/messages",
    ChatCompletionPath,
    allow = |_| LISTS
);
not_allowed!(
    messages_put,
    PUT,
    "/v1/chat/completions/{completion_id}/messages",
    ChatCompletionPath,
    allow = |_| LISTS
);
not_allowed!(
    messages_patch,
    PATCH,
    "/v1/chat/completions/{completion_id}/messages",
    ChatCompletionPath,
    allow = |_| LISTS
);
not_allowed!(
    messages_delete,
    DELETE,
    "/v1/chat/completions/{completion_id}/messages",
    ChatCompletionPath,
    allow = |_| LISTS
);
not_allowed!(models_post, POST, "/v1/models", allow = LISTS);
not_allowed!(models_put, PUT, "/v1/models", allow = LISTS);
not_allowed!(models_patch, PATCH, "/v1/models", allow = LISTS);
not_allowed!(models_delete, DELETE, "/v1/models", allow = LISTS);
not_allowed!(
    model_post,
    POST,
    "/v1/models/{model}",
    ModelPath,
    allow = |_| LISTS
);
not_allowed!(
    model_put,
    PUT,
    "/v1/models/{model}",
    ModelPath,
    allow = |_| LISTS
);
not_allowed!(
    model_patch,
    PATCH,
    "/v1/models/{model}",
    ModelPath,
    allow = |_| LISTS
);
not_allowed!(
    model_delete,
    DELETE,
    "/v1/models/{model}",
    ModelPath,
    allow = |_| LISTS
);
not_allowed!(
    model_raw_post,
    POST,
    "/v1/models/{model}/{rest:.*}",
    ModelRawPath,
    allow = |_| LISTS
);
not_allowed!(
    model_raw_put,
    PUT,
    "/v1/models/{model}/{rest:.*}",
    ModelRawPath,
    allow = |_| LISTS
);
not_allowed!(
    model_raw_patch,
    PATCH,
    "/v1/models/{model}/{rest:.*}",
    ModelRawPath,
    allow = |_| LISTS
);
not_allowed!(
    model_raw_delete,
    DELETE,
    "/v1/models/{model}/{rest:.*}",
    ModelRawPath,
    allow = |_| LISTS
);
not_allowed!(healthz_post, POST, "/healthz", allow = LISTS);
not_allowed!(healthz_put, PUT, "/healthz", allow = LISTS);
not_allowed!(healthz_patch, PATCH, "/healthz", allow = LISTS);
not_allowed!(healthz_delete, DELETE, "/healthz", allow = LISTS);
not_allowed!(responses_options, OPTIONS, "/v1/responses", allow = RESPONSES);
not_allowed!(
    response_options,
    OPTIONS,
    "/v1/responses/{response_id}",
    ResponsePath,
    allow = |p| response_item_allow(&p.response_id)
);
not_allowed!(
    cancel_options,
    OPTIONS,
    "/v1/responses/{response_id}/cancel",
    ResponsePath,
    allow = |_| CANCEL
);
not_allowed!(
    items_options,
    OPTIONS,
    "/v1/responses/{response_id}/input_items",
    ResponsePath,
    allow = |_| LISTS
);
not_allowed!(chats_options, OPTIONS, "/v1/chat/completions", allow = CHATS);
not_allowed!(
    chat_options,
    OPTIONS,
    "/v1/chat/completions/{completion_id}",
    ChatCompletionPath,
    allow = |_| CHAT
);
not_allowed!(
    messages_options,
    OPTIONS,
    "/v1/chat/completions/{completion_id}/messages",
    ChatCompletionPath,
    allow = |_| LISTS
);
not_allowed!(models_options, OPTIONS, "/v1/models", allow = LISTS);
not_allowed!(
    model_options,
    OPTIONS,
    "/v1/models/{model}",
    ModelPath,
    allow = |_| LISTS
);
not_allowed!(
    model_raw_options,
    OPTIONS,
    "/v1/models/{model}/{rest:.*}",
    ModelRawPath,
    allow = |_| LISTS
);
not_allowed!(healthz_options, OPTIONS, "/healthz", allow = LISTS);
not_allowed!(readyz_post, POST, "/readyz", allow = LISTS);
not_allowed!(readyz_put, PUT, "/readyz", allow = LISTS);
not_allowed!(readyz_patch, PATCH, "/readyz", allow = LISTS);
not_allowed!(readyz_delete, DELETE, "/readyz", allow = LISTS);
not_allowed!(readyz_options, OPTIONS, "/readyz", allow = LISTS);

/// Adds every handler above to the API.
pub fn register(api: &mut ApiDescription<ServerState>) -> Result<(), String> {
    macro_rules! add {
        ($($handler:ident),* $(,)?) => {
            $(api.register($handler).map_err(|e| e.to_string())?;)*
        };
    }
    add!(
        responses_put,
        responses_patch,
        responses_delete,
        response_put,
        response_patch,
        cancel_get,
        cancel_put,
        cancel_patch,
        cancel_delete,
        items_post,
        items_put,
        items_patch,
        items_delete,
        chats_put,
        chats_patch,
        chats_delete,
        chat_put,
        chat_patch,
        messages_post,
        messages_put,
        messages_patch,
        messages_delete,
        models_post,
        models_put,
        models_patch,
        models_delete,
        model_post,
        model_put,
        model_patch,
        model_delete,
        model_raw_post,
        model_raw_put,
        model_raw_patch,
        model_raw_delete,
        healthz_post,
        healthz_put,
        healthz_patch,
        healthz_delete,
        responses_options,
        response_options,
        cancel_options,
        items_options,
        chats_options,
        chat_options,
        messages_options,
        models_options,
        model_options,
        model_raw_options,
        healthz_options,
        readyz_post,
        readyz_put,
        readyz_patch,
        readyz_delete,
        readyz_options,
    );
    Ok(())
}
