//! End-to-end: `POST /v1/chat/completions` (JSON and chunk streams) over
//! real HTTP against a real gateway, a real database and the real fake
//! upstream: the answer's shape, the chunk rules, tools, `n`, logprobs,
//! reasoning, passthrough of unknown fields, validation and faults.

use std::time::Duration;

use maniac_tests::gateway;
use maniac_tests::harness::*;
use serde_json::{Value, json};

const CHAT: &str = "/v1/chat/completions";

/// The `data:` payloads of a chunk stream, `[DONE]` kept as a string.
async fn chunks(rsp: reqwest::Response) -> Vec<Value> {
    assert_eq!(rsp.status(), 200);
    assert!(
        rsp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = rsp.text().await.unwrap();
    text.split("\n\n")
        .filter_map(|b| b.strip_prefix("data: "))
        .map(|d| {
            if d == "[DONE]" {
                Value::String(d.into())
            } else {
                serde_json::from_str(d).expect("chunk JSON")
            }
        })
        .collect()
}

/// The text of choice `i` reassembled from chunks.
fn streamed_text(chunks: &[Value], i: u64) -> String {
    chunks
        .iter()
        .flat_map(|c| c["choices"].as_array().cloned().unwrap_or_default())
        .filter(|ch| ch["index"] == i)
        .filter_map(|ch| ch["delta"]["content"].as_str().map(str::to_string))
        .collect()
}

async fn create(gw: &Gateway, body: Value) -> Value {
    let rsp = gw.post(&gw.key, CHAT, &body).await;
    let status = rsp.status();
    let v: Value = rsp.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    v
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

#[tokio::test]
async fn echo_chat_completion_has_full_object() {
    let gw = gateway!();
    let c = create(
        &gw,
        json!({"model": "echo/echo", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hello brave"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                {"type": "text", "text": " new world"}]}]}),
    )
    .await;
    assert_eq!(c["object"], "chat.completion");
    assert!(c["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(c["created"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(c["model"], "echo/echo");
    assert_eq!(c["provider"], "echo");
    let choice = &c["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["logprobs"], Value::Null);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "hello brave new world");
    assert_eq!(choice["message"]["refusal"], Value::Null);
    assert_eq!(choice["message"]["annotations"], json!([]));
    assert!(choice["message"].get("tool_calls").is_none());
    // 2 system words + 4 user words in, 4 out.
    assert_eq!(c["usage"]["prompt_tokens"], 6);
    assert_eq!(c["usage"]["completion_tokens"], 4);
    assert_eq!(c["usage"]["total_tokens"], 10);
    assert_eq!(c["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(c["usage"]["completion_tokens_details"]["reasoning_tokens"], 0);
}

#[tokio::test]
async fn upstream_completion_passes_everything_through() {
    let gw = gateway!();
    let c = create(
        &gw,
        json!({"model": "fake/m", "messages": user("THINK ANNOTATE hi there"),
            "logprobs": true, "top_logprobs": 2, "service_tier": "flex",
            "temperature": 0.5, "seed": 7, "stop": "zzz", "max_tokens": 50}),
    )
    .await;
    let m = &c["choices"][0]["message"];
    assert_eq!(m["content"], "You said: THINK ANNOTATE hi there");
    assert_eq!(m["reasoning_content"], "Thinking about it.");
    assert_eq!(m["annotations"][0]["type"], "url_citation");
    assert_eq!(c["system_fingerprint"], "fp_fake");
    assert_eq!(c["service_tier"], "flex");
    let lp = c["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert!(!lp.is_empty());
    assert_eq!(lp[0]["top_logprobs"].as_array().unwrap().len(), 2);
    let joined: String =
        lp.iter().map(|t| t["token"].as_str().unwrap()).collect();
    assert_eq!(joined.trim(), m["content"].as_str().unwrap().trim());
    assert!(
        c["usage"]["completion_tokens_details"]["reasoning_tokens"]
            .as_i64()
            .unwrap()
            > 0
    );
    let sent = &gw.upstream.requests()[0].body;
    assert_eq!(sent["model"], "m");
    assert_eq!(sent["logprobs"], true);
    assert_eq!(sent["top_logprobs"], 2);
    assert_eq!(sent["temperature"], 0.5);
    assert_eq!(sent["seed"], 7);
    assert_eq!(sent["stop"], json!(["zzz"]));
    assert_eq!(sent["max_tokens"], 50);
    assert_eq!(sent["service_tier"], "flex");
}

#[tokio::test]
async fn stream_follows_openai_chunk_rules() {
    let gw = gateway!();
    for (model, include_usage) in [
        ("echo/echo", false),
        ("echo/echo", true),
        ("fake/m", false),
        ("fake/m", true),
    ] {
        let mut body = json!({"model": model, "messages": user("one two three four five"), "stream": true});
        if include_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        let cs = chunks(gw.post(&gw.key, CHAT, &body).await).await;
        let case = format!("{model} include_usage={include_usage}");
        assert_eq!(cs.last().unwrap(), "[DONE]", "{case}");
        let cs = &cs[..cs.len() - 1];
        let id = cs[0]["id"].as_str().unwrap();
        assert!(id.starts_with("chatcmpl-"));
        for c in cs {
            assert_eq!(c["object"], "chat.completion.chunk", "{case}");
            assert_eq!(c["id"], id, "{case}");
            assert_eq!(c["created"], cs[0]["created"], "{case}");
            assert_eq!(c["model"], model, "{case}");
            // `usage: null` on every chunk with include_usage, absent
            // without it.
            assert_eq!(c.get("usage").is_some(), include_usage, "{case}: {c}");
        }
        assert_eq!(cs[0]["choices"][0]["delta"]["role"], "assistant", "{case}");
        let with_role = cs
            .iter()
            .filter(|c| c["choices"][0]["delta"].get("role").is_some())
            .count();
        assert_eq!(with_role, 1, "{case}");
        let (body_chunks, usage_chunk) = if include_usage {
            let last = &cs[cs.len() - 1];
            assert_eq!(last["choices"], json!([]), "{case}");
            assert!(
                last["usage"]["total_tokens"].as_i64().unwrap() > 0,
                "{case}"
            );
            for c in &cs[..cs.len() - 1] {
                assert_eq!(c["usage"], Value::Null, "{case}");
            }
            (&cs[..cs.len() - 1], Some(last))
        } else {
            (cs, None)
        };
        let finishes: Vec<usize> = body_chunks
            .iter()
            .enumerate()
            .filter(|(_, c)| !c["choices"][0]["finish_reason"].is_null())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(finishes, vec![body_chunks.len() - 1], "{case}");
        assert_eq!(
            body_chunks.last().unwrap()["choices"][0]["finish_reason"],
            "stop"
        );
        let text = streamed_text(body_chunks, 0);
        assert!(text.ends_with("one two three four five"), "{case}: {text}");
        if let Some(u) = usage_chunk {
            assert_eq!(
                u["usage"]["total_tokens"].as_i64().unwrap(),
                u["usage"]["prompt_tokens"].as_i64().unwrap()
                    + u["usage"]["completion_tokens"].as_i64().unwrap()
            );
        }
    }
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"]}}}])
}

#[tokio::test]
async fn echo_tool_round_trip() {
    let gw = gateway!();
    let c = create(
        &gw,
        json!({"model": "echo/echo", "messages": user("Paris"), "tools": weather_tool(),
            "tool_choice": "required"}),
    )
    .await;
    let choice = &c["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap())
            .unwrap();
    assert_eq!(args, json!({"city": "Paris"}));
    let c = create(
        &gw,
        json!({"model": "echo/echo", "tools": weather_tool(), "messages": [
            {"role": "user", "content": "Paris"},
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 21 C"}]}),
    )
    .await;
    assert_eq!(c["choices"][0]["finish_reason"], "stop");
    assert_eq!(c["choices"][0]["message"]["content"], "sunny, 21 C");
}

#[tokio::test]
async fn upstream_tool_calls_stream_as_fragments_and_round_trip() {
    let gw = gateway!();
    let tools = json!([
        {"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "b"}}]);
    let body = json!({"model": "fake/m", "messages": user("CALL:2 weather"),
        "tools": tools, "parallel_tool_calls": true, "stream": true});
    let cs = chunks(gw.post(&gw.key, CHAT, &body).await).await;
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for c in &cs[..cs.len() - 1] {
        for f in c["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let i = f["index"].as_u64().unwrap() as usize;
            if let Some(id) = f["id"].as_str() {
                assert_eq!(i, calls.len(), "a new call takes the next index");
                assert_eq!(f["type"], "function");
                calls.push((
                    id.into(),
                    f["function"]["name"].as_str().unwrap().into(),
                    String::new(),
                ));
            } else {
                assert!(
                    f.get("type").is_none()
                        && f["function"].get("name").is_none()
                );
            }
            calls[i]
                .2
                .push_str(f["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    let last = &cs[cs.len() - 2];
    assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(calls.len(), 2);
    assert_eq!((calls[0].1.as_str(), calls[1].1.as_str()), ("a", "b"));
    for (_, _, args) in &calls {
        let v: Value =
            serde_json::from_str(args).expect("arguments reassemble");
        assert!(v["q"].as_str().unwrap().contains("weather"));
    }
    let sent = &gw.upstream.requests()[0].body;
    assert_eq!(sent["tools"][0]["function"]["name"], "a");
    assert_eq!(sent["parallel_tool_calls"], true);

    // The outputs go back: assistant tool_calls, then tool messages.
    let assistant = json!({"role": "assistant", "content": null, "tool_calls": calls.iter().map(|(id, name, args)|
        json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})).collect::<Vec<_>>()});
    gw.upstream.clear();
    let c = create(
        &gw,
        json!({"model": "fake/m", "tools": tools, "messages": [
            {"role": "user", "content": "CALL:2 weather"}, assistant,
            {"role": "tool", "tool_call_id": calls[0].0, "content": "out-a"},
            {"role": "tool", "tool_call_id": calls[1].0, "content": "out-b"}]}),
    )
    .await;
    assert_eq!(c["choices"][0]["message"]["content"], "Tool said: out-b");
    let sent = &gw.upstream.requests()[0].body;
    let roles: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "tool", "tool"]);
    assert_eq!(sent["messages"][1]["tool_calls"].as_array().unwrap().len(), 2);
    assert_eq!(sent["messages"][2]["tool_call_id"], calls[0].0.as_str());
}

#[tokio::test]
async fn n_choices_come_back_from_the_upstream() {
    let gw = gateway!();
    let c = create(
        &gw,
        json!({"model": "fake/m", "messages": user("hey"), "n": 3}),
    )
    .await;
    let texts: Vec<&str> = c["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ch| ch["message"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "You said: hey",
            "You said: hey (choice 1)",
            "You said: hey (choice 2)"
        ]
    );
    assert_eq!(gw.upstream.requests()[0].body["n"], 3);
    let cs = chunks(gw.post(&gw.key, CHAT, &json!({"model": "fake/m", "messages": user("hey"), "n": 2, "stream": true})).await).await;
    assert_eq!(streamed_text(&cs, 0), "You said: hey");
    assert_eq!(streamed_text(&cs, 1), "You said: hey (choice 1)");
    for i in [0, 1] {
        let of_choice: Vec<Value> = cs
            .iter()
            .flat_map(|c| c["choices"].as_array().cloned().unwrap_or_default())
            .filter(|ch| ch["index"] == i)
            .collect();
        assert_eq!(of_choice[0]["delta"]["role"], "assistant");
        assert_eq!(of_choice.last().unwrap()["finish_reason"], "stop");
        assert_eq!(
            of_choice
                .iter()
                .filter(|ch| !ch["finish_reason"].is_null())
                .count(),
            1
        );
    }
    // echo answers n choices too.
    let c = create(
        &gw,
        json!({"model": "echo/echo", "messages": user("same"), "n": 2}),
    )
    .await;
    assert_eq!(c["choices"][1]["message"]["content"], "same");
    assert_eq!(c["choices"][1]["index"], 1);
}

#[tokio::test]
async fn unknown_fields_reach_the_upstream_but_tags_and_trace_never() {
    let gw = gateway!();
    create(
        &gw,
        json!({"model": "fake/m", "messages": user("hi"), "top_k": 5,
            "guided_json": {"type": "object"}, "tags": ["t"], "trace": {"id": "x"},
            "metadata": {"k": "v"}, "store": false}),
    )
    .await;
    let sent = &gw.upstream.requests()[0].body;
    assert_eq!(sent["top_k"], 5);
    assert_eq!(sent["guided_json"], json!({"type": "object"}));
    for k in ["tags", "trace", "store", "metadata"] {
        assert!(sent.get(k).is_none(), "{k} forwarded: {sent}");
    }
}

#[tokio::test]
async fn streamed_reasoning_comes_as_reasoning_content() {
    let gw = gateway!();
    let cs = chunks(gw.post(&gw.key, CHAT, &json!({"model": "fake/m", "messages": user("THINK ok"), "stream": true})).await).await;
    let reasoning: String = cs[..cs.len() - 1]
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str())
        .collect();
    assert_eq!(reasoning, "Thinking about it.");
    assert_eq!(streamed_text(&cs, 0), "You said: THINK ok");
}

#[tokio::test]
async fn bad_requests_are_400s_naming_the_param() {
    let gw = gateway!();
    let m = user("x");
    let rows: Vec<(Value, &str, &str)> = vec![
        (
            json!({"model": "echo/echo", "messages": m, "temperature": 3}),
            "temperature",
            "invalid_value",
        ),
        (
            json!({"model": "echo/echo", "messages": m, "n": 0}),
            "n",
            "invalid_value",
        ),
        (
            json!({"model": "echo/echo", "messages": m, "top_logprobs": 3}),
            "top_logprobs",
            "invalid_value",
        ),
        (
            json!({"model": "echo/echo", "messages": m, "modalities": ["text", "audio"]}),
            "modalities",
            "unsupported_parameter",
        ),
        (
            json!({"model": "echo/echo", "messages": m, "audio": {"voice": "alloy", "format": "mp3"}}),
            "audio",
            "unsupported_parameter",
        ),
        (
            json!({"model": "echo/echo", "messages": m, "prediction": {"type": "content", "content": "x"}}),
            "prediction",
            "unsupported_parameter",
        ),
        (
            json!({"model": "echo/echo", "messages": []}),
            "messages",
            "invalid_value",
        ),
        (
            json!({"model": "echo/echo", "messages": m, "stream_options": {"include_usage": true}}),
            "stream_options",
            "invalid_value",
        ),
        (
            json!({"model": "echo/echo", "messages": m, "tool_choice": "required"}),
            "tool_choice",
            "invalid_value",
        ),
        (
            json!({"model": "echo/echo", "messages": m, "tools": weather_tool(), "tool_choice": {"type": "function", "function": {"name": "nope"}}}),
            "tool_choice",
            "invalid_value",
        ),
        (
            json!({"model": "echo/echo", "messages": [{"role": "tool", "tool_call_id": "call_1", "content": "x"}]}),
            "messages[0].tool_call_id",
            "invalid_value",
        ),
        (
            json!({"model": "echo/echo", "messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}),
            "messages[0].content[0].type",
            "invalid_value",
        ),
        (
            json!({"model": "echo/echo", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}]}]}),
            "messages[0].content[0]",
            "unsupported_parameter",
        ),
        (
            json!({"model": "echo/echo", "messages": m, "metadata": {"k": "v".repeat(600)}}),
            "metadata",
            "invalid_value",
        ),
        (
            json!({"model": "echo/echo", "messages": m, "logit_bias": {"50256": 200}}),
            "logit_bias",
            "invalid_value",
        ),
        (
            json!({"model": "echo/echo", "messages": m, "max_completion_tokens": 0}),
            "max_completion_tokens",
            "invalid_value",
        ),
        (json!({"model": "noslash", "messages": m}), "model", "invalid_value"),
        (json!({"model": "nope/x", "messages": m}), "model", "model_not_found"),
    ];
    let mut failures = Vec::new();
    for (body, param, code) in &rows {
        let rsp = gw.post(&gw.key, CHAT, body).await;
        let status = rsp.status().as_u16();
        let e: Value = rsp.json().await.unwrap();
        if status != 400
            || e["error"]["param"] != *param
            || e["error"]["code"] != *code
            || e["error"]["type"] != "invalid_request_error"
            || !e["error"]["message"].is_string()
        {
            failures.push(format!("{body}\n  -> {status} {e}\n  want 400 param={param} code={code}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Malformed bodies are 400s in the OpenAI shape too.
    for body in [
        json!({"model": "echo/echo"}),
        json!({"model": "echo/echo", "messages": [{"role": "wizard", "content": "x"}]}),
        json!({"model": "echo/echo", "messages": [{"role": "user", "content": "x", "surprise": 1}]}),
    ] {
        let rsp = gw.post(&gw.key, CHAT, &body).await;
        assert_eq!(rsp.status(), 400, "{body}");
        let e: Value = rsp.json().await.unwrap();
        assert_eq!(e["error"]["type"], "invalid_request_error", "{e}");
    }
    // Fields the SDKs echo back on a re-sent assistant message are fine.
    create(&gw, json!({"model": "echo/echo", "messages": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b", "refusal": null, "annotations": [], "reasoning_content": "r", "audio": null, "function_call": null},
        {"role": "user", "content": "c"}]})).await;
    // Nothing reached the upstream.
    assert_eq!(gw.upstream.request_count(), 0);
}

#[tokio::test]
async fn upstream_failures_before_and_after_the_first_chunk() {
    let gw = gateway!();
    for stream in [false, true] {
        let rsp = gw.post(&gw.key, CHAT, &json!({"model": "fake/m", "messages": user("FAULT:429"), "stream": stream})).await;
        assert_eq!(rsp.status(), 429, "stream={stream}");
        assert_eq!(rsp.headers()["retry-after"], "7");
        assert!(
            rsp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let e: Value = rsp.json().await.unwrap();
        assert_eq!(e["error"]["type"], "rate_limit_error", "{e}");
        let rsp = gw.post(&gw.key, CHAT, &json!({"model": "fake/m", "messages": user("FAULT:500"), "stream": stream})).await;
        assert_eq!(rsp.status(), 502, "stream={stream}");
    }
    let cs = chunks(gw.post(&gw.key, CHAT, &json!({"model": "fake/m", "messages": user("FAULT:reset WORDS:20"), "stream": true})).await).await;
    assert_eq!(cs.last().unwrap(), "[DONE]");
    let err = &cs[cs.len() - 2];
    assert!(err["error"]["message"].is_string(), "{err}");
    assert!(err["error"]["type"].is_string());
    assert!(err.get("object").is_none());
    assert_eq!(cs[0]["choices"][0]["delta"]["role"], "assistant");
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_chat_call() {
    let gw = gateway!();
    let mut rsp = gw.post(&gw.key, CHAT, &json!({"model": "fake/m", "messages": user("SLOW:200 WORDS:100"), "stream": true})).await;
    let first = rsp.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("chat.completion.chunk"));
    assert!(gw.upstream.open_streams() > 0);
    drop(rsp);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while gw.upstream.open_streams() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "upstream still streaming after the client left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
