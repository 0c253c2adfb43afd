//! Conveniences the official OpenAI SDKs have and the generated code lacks:
//! `output_text`, waiting for a background response, and conversions that
//! make the generated `anyOf` types easy to build.

use std::time::Duration;

use crate::{Client, SdkError, types};

/// Reading a [`types::Response`] the way the official SDKs do.
///
/// ```no_run
/// # async fn demo(client: maniac_sdk::Client) -> Result<(), maniac_sdk::SdkError> {
/// use maniac_sdk::ResponseExt;
///
/// let response = client
///     .response_view()
///     .response_id("resp_123")
///     .send()
///     .await?
///     .into_inner();
/// if response.is_done() {
///     println!("{}", response.output_text());
/// }
/// # Ok(()) }
/// ```
pub trait ResponseExt {
    /// The text of every `output_text` part of every `message` output item,
    /// concatenated in order; `""` if there is none (like
    /// `response.output_text` in the official SDKs). Refusals are left out.
    fn output_text(&self) -> String;

    /// Whether the response reached a final status (not `queued` or
    /// `in_progress`).
    fn is_done(&self) -> bool;
}

impl ResponseExt for types::Response {
    fn output_text(&self) -> String {
        let mut text = String::new();
        for item in &self.output {
            #[allow(unreachable_patterns)] // Other item kinds may be added.
            let content = match item {
                types::OutputItem::Message { content, .. } => content,
                _ => continue,
            };
            for part in content {
                if let types::OutputContent::OutputText { text: t, .. } = part {
                    text.push_str(t);
                }
            }
        }
        text
    }

    fn is_done(&self) -> bool {
        !matches!(
            self.status,
            types::ResponseStatus::Queued | types::ResponseStatus::InProgress
        )
    }
}

impl Client {
    /// Polls `GET /v1/responses/{id}` every `poll_interval` until the
    /// response is no longer `queued` or `in_progress`, and returns it.
    ///
    /// Fails with [`SdkError::Timeout`] when `timeout` passes first. Needs a
    /// Tokio runtime (for the timer). Each poll is retried per the client's
    /// [`ClientOptions`](crate::ClientOptions).
    ///
    /// ```no_run
    /// # async fn demo(client: maniac_sdk::Client) -> Result<(), maniac_sdk::SdkError> {
    /// use std::time::Duration;
    /// use maniac_sdk::{ResponseExt, types};
    ///
    /// let job = client
    ///     .response_create()
    ///     .body(
    ///         types::CreateResponse::builder()
    ///             .model("echo/test".to_string())
    ///             .input(types::Input::from("A long job"))
    ///             .background(Some(true)),
    ///     )
    ///     .send()
    ///     .await?
    ///     .into_inner();
    /// let done = client
    ///     .wait_for_done(&job.id, Duration::from_millis(200), Duration::from_secs(300))
    ///     .await?;
    /// println!("{:?}: {}", done.status, done.output_text());
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_done(
        &self,
        response_id: &str,
        poll_interval: Duration,
        timeout: Duration,
    ) -> Result<types::Response, SdkError> {
        let poll = async {
            loop {
                let response = self
                    .response_view()
                    .response_id(response_id)
                    .send()
                    .await?
                    .into_inner();
                if response.is_done() {
                    return Ok(response);
                }
                tokio::time::sleep(poll_interval).await;
            }
        };
        tokio::time::timeout(timeout, poll).await.unwrap_or_else(|_| {
            Err(SdkError::Timeout {
                response_id: response_id.to_string(),
                after: timeout,
            })
        })
    }
}

/// `"text"` as `input`: one user message
/// (`types::Input::from("Hello")`).
impl From<&str> for types::Input {
    fn from(text: &str) -> Self {
        Self::String(text.to_string())
    }
}

/// `"text"` as `input`: one user message.
impl From<String> for types::Input {
    fn from(text: String) -> Self {
        Self::String(text)
    }
}

/// Plain-text message content.
impl From<&str> for types::MessageContent {
    fn from(text: &str) -> Self {
        Self::String(text.to_string())
    }
}

/// Plain-text message content.
impl From<String> for types::MessageContent {
    fn from(text: String) -> Self {
        Self::String(text)
    }
}

impl types::InputMessage {
    /// A plain-text message from `role`: with [`types::Input::Array`], a
    /// conversation written out in full.
    ///
    /// ```
    /// use maniac_sdk::types::{Input, InputMessage, Role};
    ///
    /// let input = Input::Array(vec![
    ///     InputMessage::text(Role::System, "Answer in French.").into(),
    ///     InputMessage::text(Role::User, "Hello").into(),
    /// ]);
    /// # let _ = input;
    /// ```
    pub fn text(role: types::Role, text: impl Into<String>) -> Self {
        Self {
            content: types::MessageContent::String(text.into()),
            id: None,
            phase: None,
            role,
            status: None,
            type_: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn response(output: serde_json::Value) -> types::Response {
        serde_json::from_value(json!({
            "id": "resp_1", "object": "response", "created_at": 1,
            "status": "completed", "background": false, "model": "any",
            "provider": "echo", "metadata": {}, "output": output,
            "parallel_tool_calls": true, "reasoning": {}, "store": true,
            "tags": [], "temperature": 1.0, "text": {}, "tool_choice": "auto",
            "tools": [], "top_logprobs": 0, "top_p": 1.0,
            "truncation": "disabled"
        }))
        .expect("valid response")
    }

    fn message(parts: serde_json::Value) -> serde_json::Value {
        json!({"type": "message", "id": "msg", "role": "assistant",
               "status": "completed", "content": parts})
    }

    fn text(t: &str) -> serde_json::Value {
        json!({"type": "output_text", "text": t, "annotations": [],
               "logprobs": []})
    }

    #[test]
    fn output_text_concatenates_text_parts_in_order() {
        let r = response(json!([
            message(json!([text("Hello"), text(", ")])),
            message(json!([
                {"type": "refusal", "refusal": "no"},
                text("world")
            ])),
        ]));
        assert_eq!(r.output_text(), "Hello, world");
        assert!(r.is_done());
    }

    #[test]
    fn output_text_is_empty_without_text() {
        assert_eq!(response(json!([])).output_text(), "");
        let r = response(json!([message(json!([
            {"type": "refusal", "refusal": "no"}
        ]))]));
        assert_eq!(r.output_text(), "");
    }

    #[test]
    fn input_items_serialize_as_the_api_expects() {
        let input = types::Input::Array(vec![
            types::InputMessage::text(types::Role::User, "hi").into(),
            types::ItemReference { id: "msg_1".into(), type_: None }.into(),
        ]);
        assert_eq!(
            serde_json::to_value(&input).unwrap(),
            json!([{"role": "user", "content": "hi"}, {"id": "msg_1"}])
        );
        assert!(
            matches!(types::Input::from("x"), types::Input::String(s) if s == "x")
        );
    }

    #[test]
    fn create_response_builder_takes_plain_values() {
        let body: types::CreateResponse = types::CreateResponse::builder()
            .model("echo/any".to_string())
            .input(types::Input::from("Hello"))
            .max_output_tokens(64i64)
            .try_into()
            .unwrap();
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"model": "echo/any", "input": "Hello",
                   "max_output_tokens": 64})
        );
    }

    #[tokio::test]
    async fn wait_for_done_polls_until_a_final_status() {
        use crate::test_support::{http, response_json, serve};
        let answer = |status| {
            http("200 OK", "application/json", &response_json(status, "done"))
        };
        let (base, server) = serve(vec![
            answer("queued"),
            answer("in_progress"),
            answer("completed"),
        ])
        .await;
        let client = Client::with_key(&base, "mk_test").unwrap();
        let response = client
            .wait_for_done(
                "resp_1",
                Duration::from_millis(10),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(response.output_text(), "done");
        let requests = server.await.unwrap();
        assert_eq!(requests.len(), 3);
        assert!(requests[2].starts_with("GET /v1/responses/resp_1 "));
    }

    #[tokio::test]
    async fn wait_for_done_times_out() {
        use crate::test_support::{http, response_json, serve};
        let queued =
            http("200 OK", "application/json", &response_json("queued", ""));
        let (base, _server) = serve(vec![queued; 100]).await;
        let client = Client::with_key(&base, "mk_test").unwrap();
        let err = client
            .wait_for_done(
                "resp_1",
                Duration::from_millis(20),
                Duration::from_millis(100),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, SdkError::Timeout { .. }), "{err}");
    }
}
