//! Maniac gateway: the OpenAI Responses API in front of many model
//! providers. `api` is the contract, `http` implements it, `engine` runs
//! responses, `routing` picks and fails over deployments, `providers`
//! talk upstream, `store` keeps state.
#![deny(unsafe_code)]

pub mod api;
pub mod auth;
pub mod config;
pub mod engine;
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod http;
pub mod ids;
pub mod initial_key;
pub mod logging;
pub mod metrics;
mod nodelay;
pub mod providers;
pub mod routing;
pub mod secret;
pub mod server;
mod slog_bridge;
pub mod store;
