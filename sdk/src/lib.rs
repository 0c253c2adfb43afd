//! Typed Rust client for the Maniac gateway (the OpenAI Responses API in
//! front of many model providers).
//!
//! The [`Client`], its operations (`response_create`, `response_view`,
//! `response_delete`, `response_cancel`, `response_input_items_list`) and
//! every wire type in [`types`] are generated from `openapi.json` at build
//! time by progenitor, so they cannot drift from the server. A few
//! hand-written extensions cover what generation cannot:
//!
//! - [`Client::with_key`]: a client with the API key and timeouts that let
//!   streams stay open;
//! - [`Client::create_stream`] / [`Client::resume_stream`]: typed
//!   server-sent events that tolerate unknown event types;
//! - [`ResponseExt::output_text`] and [`Client::wait_for_done`];
//! - [`SdkError`], one error type for all of it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), maniac_sdk::SdkError> {
//! use futures::StreamExt;
//! use maniac_sdk::{Client, ResponseExt, types};
//!
//! let client = Client::with_key("http://127.0.0.1:8080", "mk_…")?;
//! let body = types::CreateResponse::builder()
//!     .model("echo/any".to_string())
//!     .input(types::Input::from("Say hello"));
//!
//! // One call, one typed response.
//! let response = client
//!     .response_create()
//!     .body(body.clone())
//!     .send()
//!     .await?
//!     .into_inner();
//! println!("{}", response.output_text());
//!
//! // The same, streamed.
//! let mut events = client.create_stream(body).await?;
//! while let Some(event) = events.next().await {
//!     if let Some(delta) = event?.text_delta() {
//!         print!("{delta}");
//!     }
//! }
//! # Ok(()) }
//! ```

mod connect;
mod error;
mod ext;
mod stream;
#[cfg(test)]
mod test_support;

// Generated code: progenitor already exempts most of it from clippy; this
// covers the rest should the spec grow.
#[allow(clippy::all)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/codegen.rs"));
}

pub use connect::{CONNECT_TIMEOUT, READ_TIMEOUT};
pub use error::SdkError;
pub use ext::ResponseExt;
pub use generated::*;
pub use stream::{ResponseEventStream, StreamEvent};
