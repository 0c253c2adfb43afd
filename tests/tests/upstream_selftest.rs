//! Self-tests of the fake upstream (`maniac_tests::upstream`).

use std::time::Duration;

use maniac_tests::upstream::FakeUpstream;
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post(up: &FakeUpstream, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}/chat/completions", up.base_url()))
        .header("Authorization", "Bearer sk-test")
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The `data:` payloads of an SSE body.
fn data_lines(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|ev| ev.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn non_streaming_reply_and_usage() {
    let up = FakeUpstream::start().await;
    let rsp = post(
        &up,
        json!({"model": "m1", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hello there"}, {"type": "image_url", "image_url": {"url": "data:x"}}]}
        ]}),
    )
    .await;
    assert_eq!(rsp.status(), 200);
    assert!(
        rsp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let v: Value = rsp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "m1");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], "You said: hello there");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8})
    );

    let reqs = up.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(up.request_count(), 1);
    assert_eq!(reqs[0].path, "/v1/chat/completions");
    assert_eq!(reqs[0].authorization.as_deref(), Some("Bearer sk-test"));
    assert_eq!(reqs[0].body["model"], "m1");
    assert_eq!(up.count_containing("hello there"), 1);
    assert_eq!(up.count_containing("nope"), 0);
    up.clear();
    assert_eq!(up.request_count(), 0);
    assert!(up.requests().is_empty());

    // Refusal.
    let v: Value = post(&up, json!({"model": "m", "messages": [{"role": "user", "content": "REFUSE it"}]})).await.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(
        v["choices"][0]["message"]["refusal"],
        "I can't help with that."
    );

    // Other paths are 404 OpenAI errors.
    let rsp =
        client().get(format!("{}/models", up.base_url())).send().await.unwrap();
    assert_eq!(rsp.status(), 404);
    let v: Value = rsp.json().await.unwrap();
    assert!(v["error"]["message"].is_string());
    assert_eq!(up.request_count(), 1);
}

#[tokio::test]
async fn streamed_reply_reassembles_with_usage_at_the_end() {
    let up = FakeUpstream::start().await;
    let rsp = post(
        &up,
        json!({"model": "m2", "stream": true, "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "one  two three"}]}),
    )
    .await;
    assert_eq!(rsp.status(), 200);
    assert_eq!(rsp.headers()["content-type"], "text/event-stream");
    let text = rsp.text().await.unwrap();
    let data = data_lines(&text);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let mut reply = String::new();
    let mut finish = None;
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["model"], "m2");
        assert_eq!(c["id"], chunks[0]["id"]);
        if let Some(choice) = c["choices"].get(0) {
            assert_eq!(choice["delta"].get("role").is_some(), i == 0);
            if let Some(t) = choice["delta"]["content"].as_str() {
                reply.push_str(t);
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                finish = Some(f.to_string());
            }
        }
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "You ");
    assert_eq!(reply, "You said: one  two three");
    assert_eq!(finish.as_deref(), Some("stop"));
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8})
    );
    assert_eq!(up.open_streams(), 0);
    assert_eq!(up.in_flight(), 0);

    // Without include_usage: no usage chunk.
    let text = post(&up, json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "JSON: x"}]}))
        .await
        .text()
        .await
        .unwrap();
    let data = data_lines(&text);
    assert_eq!(data.len(), 3 + 1 + 1);
    assert!(!text.contains("usage"));
    let json_text: String = data[..3]
        .iter()
        .map(|d| {
            serde_json::from_str::<Value>(d).unwrap()["choices"][0]["delta"]
                    ["content"]
                    .as_str()
                    .unwrap()
                    .to_string()
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&json_text).unwrap(),
        json!({"name": "Ada", "age": 36})
    );
}

#[tokio::test]
async fn max_tokens_truncates_with_length() {
    let up = FakeUpstream::start().await;
    let v: Value = post(&up, json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "WORDS:40"}]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "w0 w1 w2 w3 w4");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 5);

    let text = post(&up, json!({"model": "m", "stream": true, "max_completion_tokens": 3, "messages": [{"role": "user", "content": "a b c d"}]}))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains(r#""finish_reason":"length""#));
    assert!(text.contains(r#""content":"a""#), "{text}");
    assert!(!text.contains(r#""content":"b"#));
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn fault_429_has_retry_after() {
    let up = FakeUpstream::start().await;
    for stream in [false, true] {
        let rsp = post(&up, json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": "x FAULT:429"}]})).await;
        assert_eq!(rsp.status(), 429);
        assert_eq!(rsp.headers()["retry-after"], "7");
        let v: Value = rsp.json().await.unwrap();
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    }
    let rsp = post(&up, json!({"model": "m", "messages": [{"role": "user", "content": "FAULT:500"}]})).await;
    assert_eq!(rsp.status(), 500);
    let v: Value = rsp.json().await.unwrap();
    assert_eq!(v["error"]["message"], "upstream exploded");
    assert_eq!(up.request_count(), 3);
}

#[tokio::test]
async fn fault_reset_truncates_the_stream() {
    let up = FakeUpstream::start().await;
    let mut rsp = post(&up, json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "FAULT:reset a b c d e f"}]})).await;
    assert_eq!(rsp.status(), 200);
    let mut got = Vec::new();
    let mut failed = false;
    loop {
        match rsp.chunk().await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            Ok(None) => break,
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    let text = String::from_utf8(got).unwrap();
    assert!(failed, "the stream ended cleanly: {text}");
    assert!(!text.contains("[DONE]"));
    assert_eq!(data_lines(&text).len(), 2, "{text}");
    // Non-streaming: the connection closes without an answer.
    let err = client()
        .post(format!("{}/chat/completions", up.base_url()))
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "FAULT:reset"}]}))
        .send()
        .await;
    assert!(err.is_err());
    assert_eq!(up.request_count(), 2);
    assert_eq!(up.in_flight(), 0);
}

#[tokio::test]
async fn open_streams_drops_after_client_disconnect() {
    let up = FakeUpstream::start().await;
    let mut rsp = post(&up, json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "SLOW:100 WORDS:100"}]})).await;
    let first = rsp.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("w0"));
    assert_eq!(up.open_streams(), 1);
    assert_eq!(up.in_flight(), 1);
    drop(rsp);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while up.open_streams() > 0 || up.in_flight() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream is still open after the client left"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A hanging request does not block others and is released on disconnect.
    let url = format!("{}/chat/completions", up.base_url());
    let hang = tokio::spawn(
        client().post(url).json(&json!({"model": "m", "messages": [{"role": "user", "content": "FAULT:hang"}]})).send(),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while up.in_flight() == 0 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let v: Value = post(
        &up,
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "You said: hi");
    hang.abort();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while up.in_flight() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hanging request survived its client"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(up.count_containing("FAULT:hang"), 1);
}

#[tokio::test]
async fn malformed_and_keep_alive() {
    let up = FakeUpstream::start().await;
    let text = post(&up, json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "FAULT:malformed a"}]}))
        .await
        .text()
        .await
        .unwrap();
    let data = data_lines(&text);
    assert_eq!(data[1], "{not json");
    assert_eq!(data.last().unwrap(), "[DONE]");
    let rsp = post(&up, json!({"model": "m", "messages": [{"role": "user", "content": "FAULT:malformed"}]})).await;
    assert_eq!(rsp.status(), 200);
    assert_eq!(rsp.text().await.unwrap(), "{not json");

    // One client, many requests on one connection.
    let c = client();
    for i in 0..20 {
        let v: Value = c
            .post(format!("{}/chat/completions", up.base_url()))
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": format!("n{i}")}]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            v["choices"][0]["message"]["content"],
            format!("You said: n{i}")
        );
    }
    assert_eq!(up.request_count(), 22);
}

#[tokio::test]
async fn stamp_marker_puts_the_send_time_in_each_chunk() {
    let up = FakeUpstream::start().await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    let rsp = post(&up, json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "STAMP SLOW:1 WORDS:3"}]})).await;
    let text = rsp.text().await.unwrap();
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    let contents: Vec<String> = data_lines(&text)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"].as_str().map(str::to_string)
        })
        .collect();
    assert_eq!(contents.len(), 3, "{text}");
    let mut last = before;
    for (i, c) in contents.iter().enumerate() {
        let rest = c.strip_prefix("[t=").unwrap_or_else(|| panic!("{c:?}"));
        let (t, word) = rest.split_once(']').unwrap();
        let t: u128 = t.parse().unwrap();
        assert!(last <= t && t <= after, "{t} not in [{last}, {after}]");
        assert_eq!(word.trim_end(), format!("w{i}"));
        last = t;
    }
}
