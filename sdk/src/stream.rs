//! Typed server-sent event streams.
//!
//! Progenitor only generates the JSON variant of an operation that can also
//! answer with `text/event-stream`, so streaming is written by hand here.
//! Generated enums are closed, while the API promises new event types may
//! appear: an event the SDK cannot type is handed over as
//! [`StreamEvent::Unknown`] instead of failing the stream.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use eventsource_stream::{EventStreamError, Eventsource};
use futures::{Stream, StreamExt};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};

use crate::{
    Client, SdkError,
    error::{request_id, shorten},
    types,
    types::ResponseStreamEvent as E,
};

/// One event of a response stream.
///
/// ```no_run
/// # async fn demo(mut events: maniac_sdk::ResponseEventStream) -> Result<(), maniac_sdk::SdkError> {
/// use futures::StreamExt;
/// use maniac_sdk::StreamEvent;
///
/// while let Some(event) = events.next().await {
///     let event = event?;
///     if let Some(delta) = event.text_delta() {
///         print!("{delta}");
///     } else if let StreamEvent::Unknown { event_type, .. } = &event {
///         eprintln!("(an event type this SDK does not know: {event_type})");
///     } else if let Some(response) = event.response() {
///         eprintln!("{}: {:?}", event.type_name(), response.status);
///     }
/// }
/// # Ok(()) }
/// ```
// Unboxed so callers can match `Known(E::…)` directly; the size is nothing
// next to the JSON parse of each event.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum StreamEvent {
    /// An event of a type in the API description.
    Known(types::ResponseStreamEvent),
    /// An event of a type this SDK does not know, or whose JSON does not
    /// match its generated type. `data` is the decoded JSON (a string if the
    /// data was not JSON).
    Unknown {
        /// The `type` of the event (or its SSE `event:` name).
        event_type: String,
        /// The event data.
        data: serde_json::Value,
    },
}

impl StreamEvent {
    /// Types an SSE message: its JSON `type` decides, the SSE `event:` name
    /// is the fallback.
    pub fn from_sse(event_name: &str, data: &str) -> Self {
        if let Ok(event) = serde_json::from_str::<E>(data) {
            return Self::Known(event);
        }
        let data = serde_json::from_str(data)
            .unwrap_or_else(|_| serde_json::Value::String(data.to_string()));
        let event_type = data
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or(event_name)
            .to_string();
        Self::Unknown { event_type, data }
    }

    /// The wire `type`, such as `response.output_text.delta`.
    pub fn type_name(&self) -> &str {
        match self {
            Self::Known(event) => match event {
                E::ResponseCreatedEvent(_) => "response.created",
                E::ResponseQueuedEvent(_) => "response.queued",
                E::ResponseInProgressEvent(_) => "response.in_progress",
                E::ResponseCompletedEvent(_) => "response.completed",
                E::ResponseIncompleteEvent(_) => "response.incomplete",
                E::ResponseFailedEvent(_) => "response.failed",
                E::OutputItemAddedEvent(_) => "response.output_item.added",
                E::OutputItemDoneEvent(_) => "response.output_item.done",
                E::ContentPartAddedEvent(_) => "response.content_part.added",
                E::ContentPartDoneEvent(_) => "response.content_part.done",
                E::OutputTextDeltaEvent(_) => "response.output_text.delta",
                E::OutputTextDoneEvent(_) => "response.output_text.done",
                E::RefusalDeltaEvent(_) => "response.refusal.delta",
                E::RefusalDoneEvent(_) => "response.refusal.done",
                E::ReasoningTextDeltaEvent(_) => {
                    "response.reasoning_text.delta"
                }
                E::ReasoningTextDoneEvent(_) => "response.reasoning_text.done",
                E::ReasoningSummaryPartAddedEvent(_) => {
                    "response.reasoning_summary_part.added"
                }
                E::ReasoningSummaryPartDoneEvent(_) => {
                    "response.reasoning_summary_part.done"
                }
                E::ReasoningSummaryTextDeltaEvent(_) => {
                    "response.reasoning_summary_text.delta"
                }
                E::ReasoningSummaryTextDoneEvent(_) => {
                    "response.reasoning_summary_text.done"
                }
                E::FunctionCallArgumentsDeltaEvent(_) => {
                    "response.function_call_arguments.delta"
                }
                E::FunctionCallArgumentsDoneEvent(_) => {
                    "response.function_call_arguments.done"
                }
                E::ErrorEvent(_) => "error",
            },
            Self::Unknown { event_type, .. } => event_type,
        }
    }

    /// Position in the stream, the value to pass as `starting_after` when
    /// resuming after this event.
    pub fn sequence_number(&self) -> Option<i64> {
        let n = match self {
            Self::Known(event) => match event {
                E::ResponseCreatedEvent(e) => e.sequence_number,
                E::ResponseQueuedEvent(e) => e.sequence_number,
                E::ResponseInProgressEvent(e) => e.sequence_number,
                E::ResponseCompletedEvent(e) => e.sequence_number,
                E::ResponseIncompleteEvent(e) => e.sequence_number,
                E::ResponseFailedEvent(e) => e.sequence_number,
                E::OutputItemAddedEvent(e) => e.sequence_number,
                E::OutputItemDoneEvent(e) => e.sequence_number,
                E::ContentPartAddedEvent(e) => e.sequence_number,
                E::ContentPartDoneEvent(e) => e.sequence_number,
                E::OutputTextDeltaEvent(e) => e.sequence_number,
                E::OutputTextDoneEvent(e) => e.sequence_number,
                E::RefusalDeltaEvent(e) => e.sequence_number,
                E::RefusalDoneEvent(e) => e.sequence_number,
                E::ReasoningTextDeltaEvent(e) => e.sequence_number,
                E::ReasoningTextDoneEvent(e) => e.sequence_number,
                E::ReasoningSummaryPartAddedEvent(e) => e.sequence_number,
                E::ReasoningSummaryPartDoneEvent(e) => e.sequence_number,
                E::ReasoningSummaryTextDeltaEvent(e) => e.sequence_number,
                E::ReasoningSummaryTextDoneEvent(e) => e.sequence_number,
                E::FunctionCallArgumentsDeltaEvent(e) => e.sequence_number,
                E::FunctionCallArgumentsDoneEvent(e) => e.sequence_number,
                E::ErrorEvent(e) => e.sequence_number,
            },
            Self::Unknown { data, .. } => {
                data.get("sequence_number")?.as_i64()?
            }
        };
        Some(n)
    }

    /// Whether this event ends the stream: `response.completed`,
    /// `response.incomplete`, `response.failed` or `error`.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.type_name(),
            "response.completed"
                | "response.incomplete"
                | "response.failed"
                | "error"
        )
    }

    /// The new text of a `response.output_text.delta` event.
    pub fn text_delta(&self) -> Option<&str> {
        match self {
            Self::Known(E::OutputTextDeltaEvent(e)) => Some(&e.delta),
            _ => None,
        }
    }

    /// The response snapshot carried by a lifecycle event
    /// (`response.created`, `…queued`, `…in_progress`, `…completed`,
    /// `…incomplete`, `…failed`).
    pub fn response(&self) -> Option<&types::Response> {
        match self {
            Self::Known(event) => match event {
                E::ResponseCreatedEvent(e) => Some(&e.response),
                E::ResponseQueuedEvent(e) => Some(&e.response),
                E::ResponseInProgressEvent(e) => Some(&e.response),
                E::ResponseCompletedEvent(e) => Some(&e.response),
                E::ResponseIncompleteEvent(e) => Some(&e.response),
                E::ResponseFailedEvent(e) => Some(&e.response),
                _ => None,
            },
            Self::Unknown { .. } => None,
        }
    }
}

type EventResults =
    Pin<Box<dyn Stream<Item = Result<StreamEvent, SdkError>> + Send>>;

/// The events of one response, as a
/// `Stream<Item = Result<StreamEvent, SdkError>>`.
///
/// Items are errors only when the connection or the SSE framing fails; the
/// stream ends when the server closes it (after a terminal event).
pub struct ResponseEventStream {
    events: EventResults,
    last_sequence_number: Option<i64>,
    response_id: Option<String>,
    request_id: Option<String>,
}

impl std::fmt::Debug for ResponseEventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseEventStream")
            .field("last_sequence_number", &self.last_sequence_number)
            .field("response_id", &self.response_id)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

impl ResponseEventStream {
    /// Parses server-sent events from any byte stream. The client feeds it
    /// `reqwest::Response::bytes_stream()`; tests feed it fixed bytes.
    pub fn from_bytes<S, B, X>(bytes: S) -> Self
    where
        S: Stream<Item = Result<B, X>> + Send + 'static,
        B: AsRef<[u8]>,
        X: Into<SdkError>,
    {
        let events = bytes.eventsource().map(|item| match item {
            Ok(event) => Ok(StreamEvent::from_sse(&event.event, &event.data)),
            Err(EventStreamError::Transport(e)) => Err(e.into()),
            Err(EventStreamError::Utf8(e)) => Err(SdkError::Sse(e.to_string())),
            Err(EventStreamError::Parser(e)) => {
                Err(SdkError::Sse(e.to_string()))
            }
        });
        Self {
            events: Box::pin(events),
            last_sequence_number: None,
            response_id: None,
            request_id: None,
        }
    }

    /// The `x-request-id` of the HTTP answer that carries the stream (the
    /// id the gateway logged the request under).
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// The `sequence_number` of the last event seen: pass it as
    /// `starting_after` to [`Client::resume_stream`] after a disconnect.
    pub fn last_sequence_number(&self) -> Option<i64> {
        self.last_sequence_number
    }

    /// The response id, once a lifecycle event has carried it.
    pub fn response_id(&self) -> Option<&str> {
        self.response_id.as_deref()
    }

    /// Reads events until a terminal one and returns the response it
    /// carries (`completed`, `incomplete` or `failed`: check `status`).
    ///
    /// An `error` event becomes [`SdkError::StreamError`]. `Ok(None)` means
    /// the stream ended without a terminal event (the connection closed
    /// early); [`Client::resume_stream`] can pick it up again.
    pub async fn final_response(
        mut self,
    ) -> Result<Option<types::Response>, SdkError> {
        while let Some(event) = self.next().await {
            let event = event?;
            if event.is_terminal() {
                return terminal_outcome(event).map(Some);
            }
        }
        Ok(None)
    }
}

/// The response or error of a terminal event.
fn terminal_outcome(event: StreamEvent) -> Result<types::Response, SdkError> {
    match event {
        StreamEvent::Known(event) => match event {
            E::ResponseCompletedEvent(e) => Ok(e.response),
            E::ResponseIncompleteEvent(e) => Ok(e.response),
            E::ResponseFailedEvent(e) => Ok(e.response),
            E::ErrorEvent(e) => Err(SdkError::StreamError(e.error)),
            other => Err(SdkError::Sse(format!(
                "not a terminal event: {}",
                StreamEvent::Known(other).type_name()
            ))),
        },
        // A terminal type whose JSON did not match: say why, precisely.
        StreamEvent::Unknown { event_type, data } => {
            if event_type == "error" {
                let detail = data.get("error").unwrap_or(&data).clone();
                return match serde_json::from_value(detail) {
                    Ok(detail) => Err(SdkError::StreamError(detail)),
                    Err(_) => Err(SdkError::UnexpectedResponse {
                        status: None,
                        body: format!("error event: {data}"),
                        request_id: None,
                    }),
                };
            }
            let response = data.get("response").cloned().unwrap_or_default();
            serde_json::from_value(response).map_err(|source| {
                SdkError::Decode {
                    what: format!("response of a {event_type} event"),
                    source,
                }
            })
        }
    }
}

impl Stream for ResponseEventStream {
    type Item = Result<StreamEvent, SdkError>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        let item = self.events.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(event))) = &item {
            if let Some(n) = event.sequence_number() {
                self.last_sequence_number = Some(n);
            }
            if self.response_id.is_none()
                && let Some(response) = event.response()
            {
                self.response_id = Some(response.id.clone());
            }
        }
        item
    }
}

impl Client {
    /// Creates a response and streams its events (`stream: true` is forced
    /// on). Takes a `types::CreateResponse` or its builder.
    ///
    /// An error answer (4xx/5xx) is returned here, before any event, as
    /// [`SdkError::Api`]. Until the answer arrives the request is retried as
    /// any other (see [`ClientOptions`](crate::ClientOptions)); once events
    /// flow it never is: resume a background run with
    /// [`Client::resume_stream`] instead.
    ///
    /// ```no_run
    /// # async fn demo(client: maniac_sdk::Client) -> Result<(), maniac_sdk::SdkError> {
    /// use futures::StreamExt;
    /// use maniac_sdk::types;
    ///
    /// let request = types::CreateResponse::builder()
    ///     .model("echo/test".to_string())
    ///     .input(types::Input::from("Tell me a story"));
    /// let mut events = client.create_stream(request).await?;
    /// while let Some(event) = events.next().await {
    ///     if let Some(delta) = event?.text_delta() {
    ///         print!("{delta}");
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn create_stream<B>(
        &self,
        body: B,
    ) -> Result<ResponseEventStream, SdkError>
    where
        B: TryInto<types::CreateResponse>,
        B::Error: std::fmt::Display,
    {
        let mut body: types::CreateResponse = body
            .try_into()
            .map_err(|e| SdkError::InvalidRequest(e.to_string()))?;
        body.stream = Some(true);
        let request = self
            .client
            .post(format!("{}/v1/responses", self.baseurl))
            .json(&body);
        self.open_stream(request).await
    }

    /// Streams the events of a stored background response: replays its
    /// event log (only events after `starting_after`, if given), then
    /// follows the run live until it ends.
    ///
    /// ```no_run
    /// # async fn demo(client: maniac_sdk::Client, events: maniac_sdk::ResponseEventStream) -> Result<(), maniac_sdk::SdkError> {
    /// // After a dropped connection: pick up where the last stream stopped.
    /// let id = events.response_id().unwrap_or("resp_123").to_string();
    /// let after = events.last_sequence_number();
    /// let response = client
    ///     .resume_stream(&id, after)
    ///     .await?
    ///     .final_response()
    ///     .await?;
    /// # let _ = response;
    /// # Ok(()) }
    /// ```
    pub async fn resume_stream(
        &self,
        response_id: &str,
        starting_after: Option<i64>,
    ) -> Result<ResponseEventStream, SdkError> {
        let url = format!(
            "{}/v1/responses/{}",
            self.baseurl,
            progenitor_client::encode_path(response_id)
        );
        let mut request = self.client.get(url).query(&[("stream", "true")]);
        if let Some(n) = starting_after {
            request = request.query(&[("starting_after", n)]);
        }
        self.open_stream(request).await
    }

    /// Sends the request (with retries until an answer arrives, never
    /// after) and checks that an event stream came back.
    async fn open_stream(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<ResponseEventStream, SdkError> {
        let request = request
            .header(ACCEPT, HeaderValue::from_static("text/event-stream"))
            .build()?;
        let response = self.execute(request).await?;
        open_events(response).await
    }
}

/// Checks that `response` is an event stream: an error answer becomes
/// [`SdkError::Api`], another content type an unexpected response. Returns
/// the answer and its request id. Shared by response and chat streams.
pub(crate) async fn event_stream_answer(
    response: reqwest::Response,
) -> Result<(reqwest::Response, Option<String>), SdkError> {
    let status = response.status();
    if !status.is_success() {
        return Err(SdkError::from_error_response(response).await);
    }
    let is_sse = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
    let request_id = request_id(response.headers());
    if !is_sse {
        let body = response.bytes().await?;
        return Err(SdkError::UnexpectedResponse {
            status: Some(status),
            body: format!(
                "expected text/event-stream, got: {}",
                shorten(&body)
            ),
            request_id,
        });
    }
    Ok((response, request_id))
}

/// Checks that `response` is an event stream and parses it.
async fn open_events(
    response: reqwest::Response,
) -> Result<ResponseEventStream, SdkError> {
    let (response, request_id) = event_stream_answer(response).await?;
    let mut events = ResponseEventStream::from_bytes(response.bytes_stream());
    events.request_id = request_id;
    Ok(events)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures::{StreamExt, stream};

    use super::*;
    use crate::test_support::{http, response_json, serve, sse};

    /// Feeds `chunks` through the same parser the client uses.
    fn parse(chunks: Vec<String>) -> ResponseEventStream {
        ResponseEventStream::from_bytes(stream::iter(
            chunks.into_iter().map(|c| Ok::<_, reqwest::Error>(Bytes::from(c))),
        ))
    }

    #[tokio::test]
    async fn parses_known_events_split_across_chunks() {
        let delta = r#"{"type":"response.output_text.delta","sequence_number":3,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hel","logprobs":[]}"#;
        let whole = sse("response.output_text.delta", delta);
        let (a, b) = whole.split_at(17);
        let mut events = parse(vec![a.to_string(), b.to_string()]);

        let event = events.next().await.unwrap().unwrap();
        assert!(matches!(
            &event,
            StreamEvent::Known(E::OutputTextDeltaEvent(e)) if e.delta == "Hel"
        ));
        assert_eq!(event.type_name(), "response.output_text.delta");
        assert_eq!(event.sequence_number(), Some(3));
        assert_eq!(event.text_delta(), Some("Hel"));
        assert!(!event.is_terminal());
        assert_eq!(events.last_sequence_number(), Some(3));
        assert!(events.next().await.is_none());
    }

    #[tokio::test]
    async fn unknown_event_type_is_not_an_error() {
        let data = r#"{"type":"response.reasoning.delta","sequence_number":7,"delta":"hmm"}"#;
        let mut events = parse(vec![
            ": keep-alive comment\n\n".to_string(),
            sse("response.reasoning.delta", data),
            sse(
                "response.output_text.delta",
                r#"{"type":"response.output_text.delta"}"#,
            ),
            sse("odd", "not json"),
        ]);

        let event = events.next().await.unwrap().unwrap();
        match &event {
            StreamEvent::Unknown { event_type, data } => {
                assert_eq!(event_type, "response.reasoning.delta");
                assert_eq!(data["delta"], "hmm");
            }
            other => panic!("expected Unknown, got {other:?}"),
        }
        assert_eq!(event.sequence_number(), Some(7));
        assert!(!event.is_terminal());

        // A known type whose JSON does not match its schema.
        let event = events.next().await.unwrap().unwrap();
        assert!(matches!(event, StreamEvent::Unknown { .. }));
        assert_eq!(event.type_name(), "response.output_text.delta");

        // Data that is not JSON at all.
        let event = events.next().await.unwrap().unwrap();
        match event {
            StreamEvent::Unknown { event_type, data } => {
                assert_eq!(event_type, "odd");
                assert_eq!(data, "not json");
            }
            other => panic!("expected Unknown, got {other:?}"),
        }
        assert!(events.next().await.is_none());
    }

    #[tokio::test]
    async fn final_response_returns_the_terminal_response() {
        let created = format!(
            r#"{{"type":"response.created","sequence_number":0,"response":{}}}"#,
            response_json("in_progress", "")
        );
        let completed = format!(
            r#"{{"type":"response.completed","sequence_number":1,"response":{}}}"#,
            response_json("completed", "Hello")
        );
        let events = parse(vec![
            sse("response.created", &created),
            sse("response.completed", &completed),
        ]);
        let response = events.final_response().await.unwrap().unwrap();
        assert_eq!(response.id, "resp_1");
        assert!(matches!(response.status, types::ResponseStatus::Completed));
    }

    #[tokio::test]
    async fn final_response_reports_error_events_and_early_ends() {
        let error = r#"{"type":"error","sequence_number":2,"code":"server_error","message":"upstream died","param":null,"error":{"type":"server_error","code":"server_error","message":"upstream died","param":null}}"#;
        let err = parse(vec![sse("error", error)])
            .final_response()
            .await
            .unwrap_err();
        assert!(matches!(
            &err,
            SdkError::StreamError(d) if d.message == "upstream died"
        ));

        let created = format!(
            r#"{{"type":"response.created","sequence_number":0,"response":{}}}"#,
            response_json("in_progress", "")
        );
        let mut events = parse(vec![sse("response.created", &created)]);
        let first = events.next().await.unwrap().unwrap();
        assert_eq!(first.type_name(), "response.created");
        assert_eq!(events.response_id(), Some("resp_1"));
        assert!(events.final_response().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn create_stream_sends_key_and_stream_flag() {
        let created = format!(
            r#"{{"type":"response.created","sequence_number":0,"response":{}}}"#,
            response_json("in_progress", "")
        );
        let delta = r#"{"type":"response.output_text.delta","sequence_number":1,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi","logprobs":[]}"#;
        let completed = format!(
            r#"{{"type":"response.completed","sequence_number":2,"response":{}}}"#,
            response_json("completed", "Hi")
        );
        let body = sse("response.created", &created)
            + &sse("response.output_text.delta", delta)
            + &sse("response.completed", &completed);
        let (base, server) =
            serve(vec![http("200 OK", "text/event-stream", &body)]).await;

        let client =
            Client::with_key(&format!("{base}/v1"), "mk_test").unwrap();
        let request = types::CreateResponse::builder()
            .model("echo/any".to_string())
            .input(types::Input::from("Hi"));
        let events: Vec<_> = client
            .create_stream(request)
            .await
            .unwrap()
            .map(|e| e.unwrap().type_name().to_string())
            .collect()
            .await;
        assert_eq!(
            events,
            [
                "response.created",
                "response.output_text.delta",
                "response.completed"
            ]
        );

        let raw = server.await.unwrap().remove(0);
        let lower = raw.to_ascii_lowercase();
        assert!(raw.starts_with("POST /v1/responses HTTP/1.1"), "{raw}");
        assert!(lower.contains("authorization: bearer mk_test"), "{raw}");
        assert!(lower.contains("accept: text/event-stream"), "{raw}");
        assert!(raw.contains(r#""stream":true"#), "{raw}");
    }

    #[tokio::test]
    async fn stream_error_answer_comes_before_any_event() {
        let envelope = r#"{"error":{"message":"bad key","type":"authentication_error","param":null,"code":"invalid_api_key"}}"#;
        let (base, _server) =
            serve(vec![http("401 Unauthorized", "application/json", envelope)])
                .await;
        let client = Client::with_key(&base, "mk_wrong").unwrap();
        let err = client
            .create_stream(types::CreateResponse::builder().model("echo/demo"))
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(reqwest::StatusCode::UNAUTHORIZED));
        let error = err.api_error().unwrap();
        assert_eq!(error.type_, "authentication_error");
        assert_eq!(error.code.as_deref(), Some("invalid_api_key"));
    }

    #[tokio::test]
    async fn resume_stream_asks_for_events_after_a_position() {
        let (base, server) =
            serve(vec![http("200 OK", "text/event-stream", "")]).await;
        let client = Client::with_key(&base, "mk_test").unwrap();
        let events = client.resume_stream("resp_1", Some(4)).await.unwrap();
        assert!(events.final_response().await.unwrap().is_none());
        let raw = server.await.unwrap().remove(0);
        assert!(
            raw.starts_with(
                "GET /v1/responses/resp_1?stream=true&starting_after=4 "
            ),
            "{raw}"
        );
    }

    #[tokio::test]
    async fn json_answer_to_a_stream_request_is_an_error() {
        let (base, _server) = serve(vec![http(
            "200 OK",
            "application/json",
            &response_json("completed", "x"),
        )])
        .await;
        let client = Client::with_key(&base, "mk_test").unwrap();
        let err = client.resume_stream("resp_1", None).await.unwrap_err();
        assert!(matches!(err, SdkError::UnexpectedResponse { .. }), "{err}");
    }
}
