//! Typed Rust client for the Maniac gateway: the OpenAI Responses API in
//! front of many model providers.
//!
//! The [`Client`], its operations and every wire type in [`types`] are
//! generated from the gateway's `openapi.json` by progenitor (the code is
//! checked in as `src/generated.rs`), so they match the server. A few
//! hand-written extensions cover what generation cannot:
//!
//! | extension | what it does |
//! |---|---|
//! | [`Client::builder`], [`Client::with_key`] | a client with the API key, retries, and timeouts that let streams stay open |
//! | [`ClientOptions`], [`Client::with_max_retries`] | retries like the official OpenAI SDKs, per client or per call |
//! | [`Client::create_stream`], [`Client::resume_stream`] | typed server-sent events that tolerate unknown event types |
//! | [`Client::create_chat_stream`] | a typed Chat Completions chunk stream ending at `[DONE]` |
//! | [`ResponseExt::output_text`], [`Client::wait_for_done`] | reading and awaiting responses |
//! | [`SdkError`] | one error type, with status, `type`, `code`, `param` and request id |
//!
//! # Quickstart
//!
//! Add `maniac-sdk` and `tokio` to `Cargo.toml`, start a gateway
//! (`maniac serve`) and set `MANIAC_KEY` to a key it printed. The built-in
//! `echo` provider answers with your last message.
//!
//! ```no_run
//! use futures::StreamExt;
//! use maniac_sdk::{Client, ResponseExt, types};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), maniac_sdk::SdkError> {
//!     let key = std::env::var("MANIAC_KEY").unwrap_or_default();
//!     let client = Client::with_key("http://127.0.0.1:8080/v1", &key)?;
//!
//!     // One call, one typed response.
//!     let response = client
//!         .response_create()
//!         .body(
//!             types::CreateResponse::builder()
//!                 .model("echo/test".to_string())
//!                 .input(types::Input::from("Say hello")),
//!         )
//!         .send()
//!         .await?
//!         .into_inner();
//!     println!("{}: {}", response.id, response.output_text());
//!
//!     // The same, streamed: text deltas as they arrive.
//!     let request = types::CreateResponse::builder()
//!         .model("echo/test".to_string())
//!         .input(types::Input::from("Say hello, slowly"));
//!     let mut events = client.create_stream(request).await?;
//!     while let Some(event) = events.next().await {
//!         if let Some(delta) = event?.text_delta() {
//!             print!("{delta}");
//!         }
//!     }
//!
//!     // A second turn that sees the first (the first was stored).
//!     let next = client
//!         .response_create()
//!         .body(
//!             types::CreateResponse::builder()
//!                 .model("echo/test".to_string())
//!                 .input(types::Input::from("And again?"))
//!                 .previous_response_id(Some(response.id.clone())),
//!         )
//!         .send()
//!         .await?
//!         .into_inner();
//!     println!("{}", next.output_text());
//!     Ok(())
//! }
//! ```
//!
//! # Operations
//!
//! Each operation is a builder: set its parameters, then `.send().await`.
//! The answer is a [`ResponseValue`] (`.into_inner()` for the body,
//! `.headers()` for `x-request-id` and the rate-limit headers).
//!
//! | method | HTTP |
//! |---|---|
//! | [`Client::response_create`] | `POST /v1/responses` |
//! | [`Client::response_view`] | `GET /v1/responses/{id}` |
//! | [`Client::response_delete`] | `DELETE /v1/responses/{id}` |
//! | [`Client::response_cancel`] | `POST /v1/responses/{id}/cancel` |
//! | [`Client::response_input_items_list`] | `GET /v1/responses/{id}/input_items` |
//!
//! # Errors and retries
//!
//! Generated calls fail with [`Error`]; `?` turns it
//! into [`SdkError`], which the extensions return too. A request that fails
//! to connect, times out, or gets 408, 409, 429 or 5xx is retried
//! ([`DEFAULT_MAX_RETRIES`] times unless configured) after the delay the
//! gateway asks for in `Retry-After` / `retry-after-ms`, or with exponential
//! backoff (0.5 s doubling up to 8 s, with jitter). A stream is never
//! retried once its answer arrived.
//!
//! ```no_run
//! # async fn demo() -> Result<(), maniac_sdk::SdkError> {
//! use maniac_sdk::{Client, SdkError, types};
//!
//! let client = Client::builder("http://127.0.0.1:8080/v1")
//!     .api_key("sk-mn-…")
//!     .max_retries(5)
//!     .build()?;
//! let result = client
//!     .with_max_retries(0) // this call only: fail fast
//!     .response_create()
//!     .body(
//!         types::CreateResponse::builder()
//!             .model("echo/test".to_string())
//!             .input(types::Input::from("Hi"))
//!             .temperature(Some(5.0)),
//!     )
//!     .send()
//!     .await;
//! match result.map_err(SdkError::from) {
//!     Ok(response) => println!("{}", response.into_inner().id),
//!     Err(e) => eprintln!(
//!         "{} (param {:?}, code {:?}, request {:?})",
//!         e,
//!         e.param(),
//!         e.code(),
//!         e.request_id()
//!     ),
//! }
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod chat_stream;
mod connect;
mod error;
mod ext;
mod retry;
mod stream;
#[cfg(test)]
mod test_support;

// Written by `cargo xtask sdk generate` from openapi.json; its format is
// prettyplease's, kept so the drift check compares bytes. Progenitor exempts
// most of it from clippy; this covers the rest should the spec grow.
#[rustfmt::skip]
#[allow(clippy::all)]
mod generated;

pub use chat_stream::ChatChunkStream;
pub use connect::{CONNECT_TIMEOUT, ClientBuilder, READ_TIMEOUT};
pub use error::SdkError;
pub use ext::ResponseExt;
pub use generated::*;
pub use retry::{ClientOptions, DEFAULT_MAX_RETRIES};
pub use stream::{ResponseEventStream, StreamEvent};
