//! `GET /metrics`: the scrape answer, its optional bearer token, and the
//! separate listener of `[metrics] listen`. The token is read from the
//! environment variable `[metrics] token_env` names, once at start; only
//! its hash is kept.

use std::net::SocketAddr;

use dropshot::{
    ApiDescription, Body, ConfigDropshot, HttpServer, RequestContext,
    ServerBuilder,
};
use http::{HeaderMap, Response, StatusCode};

use super::{Metrics, MetricsConfig};
use crate::api::ApiError;

/// How scrapes are answered.
#[derive(Clone)]
pub struct Exposition {
    metrics: Metrics,
    token_hash: Option<String>,
    /// Served on `[metrics] listen`, not on the main listener.
    separate: Option<SocketAddr>,
}

impl Exposition {
    /// Reads `[metrics]`: the address must parse and the token variable,
    /// when named, must be set (a scrape endpoint meant to be protected
    /// must not silently be open).
    pub fn from_config(
        cfg: &MetricsConfig,
        metrics: Metrics,
    ) -> Result<Exposition, String> {
        let separate = match &cfg.listen {
            Some(l) => Some(l.parse::<SocketAddr>().map_err(|e| {
                format!("[metrics] listen: '{l}' is not an address: {e}")
            })?),
            None => None,
        };
        let token_hash = match &cfg.token_env {
            Some(var) => match std::env::var(var) {
                Ok(t) if !t.trim().is_empty() => {
                    Some(crate::auth::hash(t.trim()))
                }
                _ => {
                    return Err(format!(
                        "[metrics] token_env: the environment variable \
                         {var} is not set; set it to the scrape token or \
                         remove token_env"
                    ));
                }
            },
            None => None,
        };
        Ok(Exposition { metrics, token_hash, separate })
    }

    /// The address of the separate listener, if configured.
    pub fn separate(&self) -> Option<SocketAddr> {
        self.separate
    }

    /// The answer of the main listener's `/metrics`: 404 when metrics are
    /// served on their own listener.
    pub fn on_main(
        &self,
        headers: &HeaderMap,
    ) -> Result<Response<Body>, ApiError> {
        if self.separate.is_some() {
            return Err(ApiError::new(
                404,
                "invalid_request_error",
                "Invalid URL (GET /metrics).",
                None,
                None,
            ));
        }
        self.scrape(headers)
    }

    /// The metrics text, if the scrape carries the token (when one is
    /// configured).
    pub fn scrape(
        &self,
        headers: &HeaderMap,
    ) -> Result<Response<Body>, ApiError> {
        if let Some(expected) = &self.token_hash {
            let presented = headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| crate::auth::hash(token.trim()));
            if presented.as_deref() != Some(expected.as_str()) {
                return Err(ApiError::new(
                    401,
                    "invalid_request_error",
                    "Scraping the metrics needs the metrics token: send \
                     `Authorization: Bearer TOKEN` with the value of the \
                     variable `[metrics] token_env` names.",
                    None,
                    Some("invalid_api_key"),
                ));
            }
        }
        Response::builder()
            .status(StatusCode::OK)
            .header(
                http::header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )
            .body(Body::from(self.metrics.encode()))
            .map_err(|e| ApiError::internal(&e.to_string()))
    }
}

/// `GET /metrics` on the separate listener.
#[dropshot::endpoint { method = GET, path = "/metrics", unpublished = true }]
async fn metrics_scrape(
    rqctx: RequestContext<Exposition>,
) -> Result<Response<Body>, ApiError> {
    rqctx.context().scrape(rqctx.request.headers())
}

/// Starts the separate metrics listener on `addr`.
pub fn listen(
    addr: SocketAddr,
    exposition: Exposition,
) -> Result<HttpServer<Exposition>, String> {
    let mut api = ApiDescription::new();
    api.register(metrics_scrape).map_err(|e| e.to_string())?;
    let config = ConfigDropshot { bind_address: addr, ..Default::default() };
    ServerBuilder::new(api, exposition, crate::slog_bridge::logger())
        .config(config)
        .start()
        .map_err(|e| format!("starting the metrics listener on {addr}: {e}"))
}
