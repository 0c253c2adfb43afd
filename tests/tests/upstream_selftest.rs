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
    let rsp = client()
        .get(format!("{}/embeddings", up.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 404);
    let v: Value = rsp.json().await.unwrap();
    assert!(v["error"]["message"].is_string());
    assert_eq!(up.request_count(), 1);
}

#[tokio::test]
async fn model_list_answers_what_it_was_told_and_records_auth() {
    let up = FakeUpstream::start().await;
    let url = format!("{}/models", up.base_url());
    let list = |v: Value| -> Vec<String> {
        assert_eq!(v["object"], "list");
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                assert_eq!(m["object"], "model");
                m["id"].as_str().unwrap().to_string()
            })
            .collect()
    };
    let v: Value =
        client().get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(list(v), maniac_tests::upstream::DEFAULT_MODELS);
    up.set_models(&["a", "b", "c"]);
    let rsp = client().get(&url).bearer_auth("sk-x").send().await.unwrap();
    assert_eq!(list(rsp.json().await.unwrap()), ["a", "b", "c"]);
    up.fail_models(503);
    let rsp = client().get(&url).send().await.unwrap();
    assert_eq!(rsp.status(), 503);
    let v: Value = rsp.json().await.unwrap();
    assert!(v["error"]["message"].is_string());
    assert_eq!(
        up.model_list_requests(),
        [None, Some("Bearer sk-x".to_string()), None]
    );
    assert_eq!(up.request_count(), 0, "listings are not chat requests");
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
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("upstream exploded ("),
        "{v}"
    );
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

// ------------------------------------------------- tools, n, logprobs, …

async fn create(up: &FakeUpstream, body: Value) -> Value {
    let rsp = post(up, body).await;
    assert_eq!(rsp.status(), 200);
    rsp.json().await.unwrap()
}

/// The parsed chunks of a streamed answer (which must end with `[DONE]`).
async fn stream(up: &FakeUpstream, mut body: Value) -> Vec<Value> {
    body["stream"] = json!(true);
    let text = post(up, body).await.text().await.unwrap();
    let data = data_lines(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
    data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "lookup"}},
    ])
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

#[tokio::test]
async fn tool_calls_follow_the_marker_and_tool_choice() {
    let up = FakeUpstream::start().await;
    let text = r#"CALL:3 "weather" in Paris"#;
    let v = create(
        &up,
        json!({"model": "m", "tools": tools(), "messages": user(text)}),
    )
    .await;
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    let names: Vec<&str> =
        calls.iter().map(|c| c["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["get_weather", "lookup", "get_weather"]);
    let id = v["id"].as_str().unwrap().strip_prefix("chatcmpl-").unwrap();
    for (i, c) in calls.iter().enumerate() {
        assert_eq!(c["id"], format!("call_{id}_{i}"));
        assert_eq!(c["type"], "function");
        let args = c["function"]["arguments"].as_str().unwrap();
        assert_eq!(args, json!({"q": text}).to_string());
    }
    assert_eq!(v["usage"]["completion_tokens"], 3 * 4);

    // tool_choice decides without a marker; "none" and no tools never call.
    let cases = [
        (
            json!({"tool_choice": "required", "tools": tools()}),
            "hi",
            Some("get_weather"),
        ),
        (
            json!({"tool_choice": {"type": "function", "function": {"name": "lookup"}}, "tools": tools()}),
            "CALL:2 hi",
            Some("lookup"),
        ),
        (json!({"tool_choice": "auto", "tools": tools()}), "hi", None),
        (json!({"tool_choice": "none", "tools": tools()}), "CALL hi", None),
        (json!({"tools": []}), "CALL hi", None),
        (json!({}), "CALL hi", None),
    ];
    for (i, (mut body, text, want)) in cases.into_iter().enumerate() {
        body["model"] = json!("m");
        body["messages"] = user(text);
        let v = create(&up, body.clone()).await;
        let message = &v["choices"][0]["message"];
        match want {
            Some(name) => {
                let calls = message["tool_calls"].as_array().unwrap();
                assert!(
                    calls.iter().all(|c| c["function"]["name"] == name),
                    "case {i}: {v}"
                );
                assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
            }
            None => {
                assert_eq!(
                    message["content"],
                    format!("You said: {text}"),
                    "case {i}: {body}"
                );
                assert!(message.get("tool_calls").is_none(), "case {i}: {v}");
            }
        }
    }
}

#[tokio::test]
async fn streamed_tool_calls_reassemble_from_fragments() {
    let up = FakeUpstream::start().await;
    let text = "THINK CALL:2 ünïcode \"q\"";
    let chunks = stream(
        &up,
        json!({"model": "m", "tools": tools(), "messages": user(text)}),
    )
    .await;
    let first = &chunks[0]["choices"][0]["delta"];
    assert_eq!(first["role"], "assistant");
    assert_eq!(first["reasoning_content"], "Thinking ");
    let mut calls: Vec<(String, String, String)> = Vec::new();
    let mut pieces = [0, 0];
    let mut finish = Vec::new();
    for c in &chunks {
        let choice = &c["choices"][0];
        if let Some(f) = choice["finish_reason"].as_str() {
            finish.push(f.to_string());
        }
        let Some(frags) = choice["delta"]["tool_calls"].as_array() else {
            continue;
        };
        assert_eq!(frags.len(), 1);
        let f = &frags[0];
        let i = f["index"].as_u64().unwrap() as usize;
        if let Some(id) = f["id"].as_str() {
            assert_eq!(i, calls.len(), "calls are sent in order");
            assert_eq!(f["type"], "function");
            assert_eq!(f["function"]["arguments"], "");
            let name = f["function"]["name"].as_str().unwrap();
            calls.push((id.to_string(), name.to_string(), String::new()));
        } else {
            let keys: Vec<&String> = f.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["function", "index"], "{f}");
            assert_eq!(f["function"].as_object().unwrap().len(), 1, "{f}");
            calls[i].2.push_str(f["function"]["arguments"].as_str().unwrap());
            pieces[i] += 1;
        }
    }
    assert_eq!(finish, ["tool_calls"]);
    assert!(pieces.iter().all(|&n| n >= 3), "{pieces:?}");
    let names: Vec<&str> = calls.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(names, ["get_weather", "lookup"]);
    assert_ne!(calls[0].0, calls[1].0);
    for (_, _, args) in &calls {
        let args: Value = serde_json::from_str(args).unwrap();
        assert_eq!(args, json!({"q": text}));
    }
}

#[tokio::test]
async fn tool_results_are_answered() {
    let up = FakeUpstream::start().await;
    for content in [
        json!("sunny, 21 C"),
        json!([{"type": "text", "text": "sunny, "}, {"type": "text", "text": "21 C"}]),
    ] {
        let messages = json!([
            {"role": "user", "content": "CALL weather?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": content},
        ]);
        let body = json!({"model": "m", "tools": tools(), "tool_choice": "required", "messages": messages});
        let v = create(&up, body.clone()).await;
        assert_eq!(
            v["choices"][0]["message"]["content"],
            "Tool said: sunny, 21 C"
        );
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        let text: String = stream(&up, body)
            .await
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"].as_str().map(str::to_string)
            })
            .collect();
        assert_eq!(text, "Tool said: sunny, 21 C");
    }
}

#[tokio::test]
async fn n_choices_are_numbered_and_streamed_interleaved() {
    let up = FakeUpstream::start().await;
    let v = create(
        &up,
        json!({"model": "m", "n": 3, "messages": user("hi there")}),
    )
    .await;
    let texts: Vec<&str> = v["choices"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            assert_eq!(c["index"], i);
            assert_eq!(c["finish_reason"], "stop");
            c["message"]["content"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        texts,
        [
            "You said: hi there",
            "You said: hi there (choice 1)",
            "You said: hi there (choice 2)"
        ]
    );
    assert_eq!(v["usage"]["completion_tokens"], 4 + 6 + 6);
    let body = json!({"model": "m", "n": 2, "messages": user("JSON: x")});
    let v = create(&up, body).await;
    assert_eq!(v["choices"][0]["message"], v["choices"][1]["message"]);
    let v = create(&up, json!({"model": "m", "n": 20, "messages": user("x")}))
        .await;
    assert_eq!(
        v["choices"].as_array().unwrap().len(),
        maniac_tests::upstream::MAX_CHOICES
    );

    let chunks = stream(&up, json!({"model": "m", "n": 2, "stream_options": {"include_usage": true}, "messages": user("a b")})).await;
    let order: Vec<u64> = chunks
        .iter()
        .filter_map(|c| {
            c["choices"].get(0).map(|ch| ch["index"].as_u64().unwrap())
        })
        .collect();
    // 4 and 6 content pieces plus a finish chunk each, round by round.
    assert_eq!(order, [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1, 1]);
    let mut text = [String::new(), String::new()];
    let mut finish = [0, 0];
    for (k, c) in chunks.iter().enumerate() {
        let Some(choice) = c["choices"].get(0) else { continue };
        assert_eq!(c["choices"].as_array().unwrap().len(), 1);
        let i = choice["index"].as_u64().unwrap() as usize;
        assert_eq!(choice["delta"].get("role").is_some(), k < 2, "{c}");
        text[i].push_str(choice["delta"]["content"].as_str().unwrap_or(""));
        if choice["finish_reason"] == "stop" {
            finish[i] += 1;
        }
    }
    assert_eq!(text, ["You said: a b", "You said: a b (choice 1)"]);
    assert_eq!(finish, [1, 1]);
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 4 + 6);
}

#[tokio::test]
async fn logprobs_are_present_only_when_asked() {
    let up = FakeUpstream::start().await;
    let body = json!({"model": "m", "logprobs": true, "top_logprobs": 2, "messages": user("héllo world")});
    let v = create(&up, body.clone()).await;
    let lp = &v["choices"][0]["logprobs"];
    assert_eq!(lp["refusal"], Value::Null);
    let entries = lp["content"].as_array().unwrap();
    let tokens: Vec<&str> =
        entries.iter().map(|e| e["token"].as_str().unwrap()).collect();
    assert_eq!(tokens, ["You ", "said: ", "héllo ", "world"]);
    for e in entries {
        let token = e["token"].as_str().unwrap();
        assert_eq!(e["logprob"], -0.25);
        assert_eq!(e["bytes"], json!(token.as_bytes()));
        let top = e["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 2);
        assert_eq!(
            top[0],
            json!({"token": token, "logprob": -0.25, "bytes": token.as_bytes()})
        );
        assert_eq!(top[1]["token"], "alt1");
    }
    let chunks = stream(&up, body).await;
    let mut streamed = String::new();
    for c in &chunks {
        let choice = &c["choices"][0];
        if let Some(t) = choice["delta"]["content"].as_str() {
            let lp = &choice["logprobs"]["content"];
            assert_eq!(lp.as_array().unwrap().len(), 1, "{c}");
            assert_eq!(lp[0]["token"], t);
            streamed.push_str(t);
        }
    }
    assert_eq!(streamed, "You said: héllo world");

    let plain = json!({"model": "m", "messages": user("no logprobs")});
    let v = create(&up, plain.clone()).await;
    assert_eq!(v["choices"][0]["logprobs"], Value::Null);
    let chunks = stream(&up, plain).await;
    assert!(
        chunks.iter().all(|c| c["choices"][0]
            .get("logprobs")
            .is_none_or(Value::is_null))
    );
}

#[tokio::test]
async fn annotate_and_fields_markers() {
    let up = FakeUpstream::start().await;
    let v = create(&up, json!({"model": "m", "messages": user("ANNOTATE ✓")}))
        .await;
    let message = &v["choices"][0]["message"];
    let len = message["content"].as_str().unwrap().chars().count();
    assert_eq!(
        message["annotations"],
        json!([{"type": "url_citation", "url_citation": {"start_index": 0, "end_index": len, "url": "https://example.com/fake", "title": "Fake"}}])
    );
    let chunks =
        stream(&up, json!({"model": "m", "messages": user("ANNOTATE a b")}))
            .await;
    let annotated: Vec<bool> = chunks
        .iter()
        .filter(|c| c["choices"][0]["delta"]["content"].is_string())
        .map(|c| c["choices"][0]["delta"].get("annotations").is_some())
        .collect();
    assert_eq!(annotated, [false, false, false, false, true]);
    let v = create(&up, json!({"model": "m", "messages": user("plain")})).await;
    assert!(v["choices"][0]["message"].get("annotations").is_none());

    let v = create(&up, json!({"top_k": 5, "model": "m", "guided_json": {}, "messages": user("FIELDS")})).await;
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "guided_json,messages,model,top_k"
    );
}

#[tokio::test]
async fn fingerprint_service_tier_and_usage_chunks() {
    let up = FakeUpstream::start().await;
    let v = create(&up, json!({"model": "m", "messages": user("x")})).await;
    assert_eq!(v["system_fingerprint"], "fp_fake");
    assert_eq!(v["service_tier"], "default");
    let v = create(
        &up,
        json!({"model": "m", "service_tier": "flex", "messages": user("x")}),
    )
    .await;
    assert_eq!(v["service_tier"], "flex");

    let chunks = stream(&up, json!({"model": "m", "service_tier": "priority", "stream_options": {"include_usage": true}, "messages": user("THINK a b")})).await;
    let (last, rest) = chunks.split_last().unwrap();
    for c in &chunks {
        assert_eq!(c["system_fingerprint"], "fp_fake");
        assert_eq!(c["service_tier"], "priority");
    }
    assert!(rest.iter().all(|c| c.get("usage").is_none()));
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"]["completion_tokens_details"]["reasoning_tokens"],
        3
    );
    let chunks =
        stream(&up, json!({"model": "m", "messages": user("a b")})).await;
    assert!(chunks.iter().all(|c| c.get("usage").is_none() && c["service_tier"] == "default"));
}
