//! Typed Chat Completions chunk streams.
//!
//! Progenitor generates only the JSON variant of `chat_completion_create`,
//! so the `text/event-stream` variant is written here: `data:` lines of
//! [`types::ChatCompletionChunk`] ending with `data: [DONE]`. A
//! `data: {"error": …}` line (a failure after the first chunk) becomes
//! [`SdkError::StreamError`], as the official SDKs raise on it.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use eventsource_stream::{EventStreamError, Eventsource};
use futures::{Stream, StreamExt};
use reqwest::header::{ACCEPT, HeaderValue};

use crate::{Client, SdkError, types};

type ChunkResults = Pin<
    Box<dyn Stream<Item = Result<types::ChatCompletionChunk, SdkError>> + Send>,
>;

/// The chunks of one streamed chat completion, as a
/// `Stream<Item = Result<types::ChatCompletionChunk, SdkError>>` that ends
/// at `[DONE]`.
pub struct ChatChunkStream {
    chunks: ChunkResults,
    request_id: Option<String>,
}

impl std::fmt::Debug for ChatChunkStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatChunkStream")
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

/// One `data:` payload as a chunk, an error, or the end.
fn chunk(data: &str) -> Option<Result<types::ChatCompletionChunk, SdkError>> {
    if data.trim() == "[DONE]" {
        return None;
    }
    let value: serde_json::Value = match serde_json::from_str(data) {
        Ok(v) => v,
        Err(e) => {
            return Some(Err(SdkError::Sse(format!("chunk is not JSON: {e}"))));
        }
    };
    if let Some(err) = value.get("error") {
        return Some(match serde_json::from_value(err.clone()) {
            Ok(detail) => Err(SdkError::StreamError(detail)),
            Err(_) => Err(SdkError::UnexpectedResponse {
                status: None,
                body: format!("error chunk: {value}"),
                request_id: None,
            }),
        });
    }
    Some(serde_json::from_value(value).map_err(|source| SdkError::Decode {
        what: "chat.completion.chunk".into(),
        source,
    }))
}

impl ChatChunkStream {
    /// Parses a chunk stream from any byte stream (the client feeds it
    /// `reqwest::Response::bytes_stream()`).
    pub fn from_bytes<S, B, X>(bytes: S) -> Self
    where
        S: Stream<Item = Result<B, X>> + Send + 'static,
        B: AsRef<[u8]>,
        X: Into<SdkError>,
    {
        let chunks = bytes
            .eventsource()
            .map(|item| match item {
                Ok(event) => chunk(&event.data),
                Err(EventStreamError::Transport(e)) => Some(Err(e.into())),
                Err(EventStreamError::Utf8(e)) => {
                    Some(Err(SdkError::Sse(e.to_string())))
                }
                Err(EventStreamError::Parser(e)) => {
                    Some(Err(SdkError::Sse(e.to_string())))
                }
            })
            // `[DONE]` ends the stream.
            .take_while(|c| std::future::ready(c.is_some()))
            .filter_map(std::future::ready);
        Self { chunks: Box::pin(chunks), request_id: None }
    }

    /// The `x-request-id` of the HTTP answer that carries the stream.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// Reads the whole stream and returns the text of each choice.
    pub async fn collect_text(mut self) -> Result<Vec<String>, SdkError> {
        let mut texts: Vec<String> = Vec::new();
        while let Some(c) = self.next().await {
            for choice in c?.choices {
                let i = choice.index as usize;
                if texts.len() <= i {
                    texts.resize(i + 1, String::new());
                }
                if let Some(t) = &choice.delta.content {
                    texts[i].push_str(t);
                }
            }
        }
        Ok(texts)
    }
}

impl Stream for ChatChunkStream {
    type Item = Result<types::ChatCompletionChunk, SdkError>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        self.chunks.as_mut().poll_next(cx)
    }
}

impl Client {
    /// Creates a chat completion and streams its chunks (`stream: true` is
    /// forced on). Takes a `types::CreateChatCompletion` or its builder.
    ///
    /// An error answer (4xx/5xx) is returned here, before any chunk, as
    /// [`SdkError::Api`]; a failure after the first chunk is an
    /// [`SdkError::StreamError`] item.
    ///
    /// ```no_run
    /// # async fn demo(client: maniac_sdk::Client) -> Result<(), maniac_sdk::SdkError> {
    /// use futures::StreamExt;
    /// use maniac_sdk::types;
    ///
    /// let request = types::CreateChatCompletion::builder()
    ///     .model("echo/echo".to_string())
    ///     .messages(vec![types::ChatMessage::User {
    ///         content: types::ChatContent::String("Tell me a story".into()),
    ///         name: None,
    ///     }]);
    /// let mut chunks = client.create_chat_stream(request).await?;
    /// while let Some(chunk) = chunks.next().await {
    ///     for choice in chunk?.choices {
    ///         print!("{}", choice.delta.content.unwrap_or_default());
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn create_chat_stream<B>(
        &self,
        body: B,
    ) -> Result<ChatChunkStream, SdkError>
    where
        B: TryInto<types::CreateChatCompletion>,
        B::Error: std::fmt::Display,
    {
        let mut body: types::CreateChatCompletion = body
            .try_into()
            .map_err(|e| SdkError::InvalidRequest(e.to_string()))?;
        body.stream = Some(true);
        let request = self
            .client
            .post(format!("{}/v1/chat/completions", self.baseurl))
            .json(&body)
            .header(ACCEPT, HeaderValue::from_static("text/event-stream"))
            .build()?;
        let response = self.execute(request).await?;
        let (response, request_id) =
            crate::stream::event_stream_answer(response).await?;
        let mut chunks = ChatChunkStream::from_bytes(response.bytes_stream());
        chunks.request_id = request_id;
        Ok(chunks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(
        s: &str,
    ) -> impl Stream<Item = Result<bytes::Bytes, SdkError>> + Send + 'static
    {
        futures::stream::iter(vec![Ok(bytes::Bytes::from(s.to_string()))])
    }

    const CHUNK: &str = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"echo/echo","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null,"logprobs":null}],"system_fingerprint":null,"service_tier":null,"provider":"echo"}"#;

    #[tokio::test]
    async fn chunks_end_at_done() {
        let body = format!(
            "data: {CHUNK}\n\ndata: {CHUNK}\n\ndata: [DONE]\n\ndata: {CHUNK}\n\n"
        );
        let texts = ChatChunkStream::from_bytes(bytes(&body))
            .collect_text()
            .await
            .unwrap();
        assert_eq!(texts, ["HiHi"]);
    }

    #[tokio::test]
    async fn an_error_line_is_a_stream_error() {
        let body = format!(
            "data: {CHUNK}\n\ndata: {{\"error\":{{\"message\":\"broke\",\"type\":\"server_error\",\"param\":null,\"code\":\"server_error\"}}}}\n\ndata: [DONE]\n\n"
        );
        let mut s = ChatChunkStream::from_bytes(bytes(&body));
        assert!(s.next().await.unwrap().is_ok());
        let err = s.next().await.unwrap().unwrap_err();
        assert!(matches!(err, SdkError::StreamError(_)), "{err:?}");
        assert!(s.next().await.is_none());
    }
}
