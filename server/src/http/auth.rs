//! Bearer-key authentication. Keys are never logged or echoed; the
//! internal service key may act for the organization named in
//! `Maniac-Organization`.

use dropshot::RequestContext;

use super::ServerState;
use crate::api::ApiError;
use crate::engine::{Caller, EngineError};
use crate::store::StoreError;

fn store_error(e: StoreError) -> ApiError {
    ApiError::from(EngineError::Store(e))
}

/// Header naming the organization an internal-key call acts for.
const ORG_HEADER: &str = "maniac-organization";

fn unauthorized(message: &str, code: Option<&str>) -> ApiError {
    ApiError::new(401, "invalid_request_error", message, None, code)
}

/// Resolves the caller's organization from the Authorization header,
/// noted for the access line (the key id, never the key).
pub async fn authenticate(
    rqctx: &RequestContext<ServerState>,
) -> Result<Caller, ApiError> {
    let caller = resolve(rqctx).await?;
    crate::metrics::notes::note(|n| {
        n.org = Some(caller.org_id.clone());
        n.key_id.clone_from(&caller.key_id);
    });
    Ok(caller)
}

async fn resolve(
    rqctx: &RequestContext<ServerState>,
) -> Result<Caller, ApiError> {
    let headers = rqctx.request.headers();
    let ctx = rqctx.context();
    let value = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("");
    let secret = match value.split_once(' ') {
        Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") => {
            key.trim()
        }
        _ if value.is_empty() => "",
        _ => {
            return Err(unauthorized(
                "Malformed Authorization header: use `Authorization: Bearer \
                 YOUR_KEY`.",
                Some("invalid_api_key"),
            ));
        }
    };
    if secret.is_empty() {
        return Err(unauthorized(
            "You didn't provide an API key. You need to provide your API key \
             in an Authorization header using Bearer auth (i.e. \
             Authorization: Bearer YOUR_KEY).",
            None,
        ));
    }
    let request_id = rqctx.request_id.clone();
    if let Some(internal) = &ctx.internal_key_hash
        && crate::auth::hash(secret) == *internal
    {
        let org = headers
            .get(ORG_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::invalid(
                    "The internal service key needs a \
                         Maniac-Organization header.",
                    None,
                    None,
                )
            })?;
        let org_id =
            ctx.keys.find_org(org).await.map_err(store_error)?.ok_or_else(
                || {
                    unauthorized(
                        "Unknown organization in Maniac-Organization.",
                        Some("invalid_organization"),
                    )
                },
            )?;
        return Ok(Caller { org_id, key_id: None, request_id });
    }
    match ctx.keys.lookup(secret).await.map_err(store_error)? {
        Some(rec) if !rec.revoked => Ok(Caller {
            org_id: rec.org_id,
            key_id: Some(rec.key_id),
            request_id,
        }),
        Some(_) => Err(unauthorized(
            "This API key has been revoked. Ask your operator for a new one.",
            Some("invalid_api_key"),
        )),
        None => Err(unauthorized(
            "Incorrect API key provided. Check the key, or create one with \
             `maniac keys create`.",
            Some("invalid_api_key"),
        )),
    }
}
