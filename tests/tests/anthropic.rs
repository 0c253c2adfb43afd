//! End-to-end: the `anthropic` provider over real HTTP against a real
//! gateway and the fake Anthropic upstream, through `/v1/responses` and
//! `/v1/chat/completions`, JSON and streaming: the translated request as
//! the upstream received it (and validated, as Anthropic does), the
//! answer's items, usage, stop reasons, faults and key hygiene.

use maniac_server::providers::ProviderConfig;
use maniac_tests::anthropic::{self, FakeAnthropic, TEST_KEY};
use maniac_tests::gateway;
use maniac_tests::harness::*;
use serde_json::{Value, json};

const CHAT: &str = "/v1/chat/completions";
const RESPONSES: &str = "/v1/responses";
const MODEL: &str = "claude/claude-sonnet-test";

/// A gateway with provider `claude` in front of a fresh fake Anthropic
/// (or a return from the test when the database backend is missing).
macro_rules! setup {
    () => {{
        let fake = FakeAnthropic::start(Some(TEST_KEY)).await;
        let cfg = ProviderConfig::Anthropic(anthropic::config(&fake));
        let gw = gateway!(Options {
            extra_providers: vec![("claude".into(), cfg)],
            ..Options::default()
        });
        (gw, fake)
    }};
}

/// The `data:` payloads of a chat chunk stream, `[DONE]` as a string.
async fn chunks(rsp: reqwest::Response) -> Vec<Value> {
    assert_eq!(rsp.status(), 200);
    let text = rsp.text().await.unwrap();
    assert!(!text.contains(TEST_KEY));
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

fn streamed_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

fn finish_reasons(chunks: &[Value]) -> Vec<String> {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .map(str::to_string)
        .collect()
}

/// POSTs and returns `(status, JSON)`, checking the key stayed out.
async fn post(gw: &Gateway, path: &str, body: Value) -> (u16, Value) {
    let rsp = gw.post(&gw.key, path, &body).await;
    let status = rsp.status().as_u16();
    let text = rsp.text().await.unwrap();
    assert!(!text.contains(TEST_KEY), "the key leaked: {text}");
    (status, serde_json::from_str(&text).expect("JSON answer"))
}

async fn ok(gw: &Gateway, path: &str, body: Value) -> Value {
    let (status, v) = post(gw, path, body).await;
    assert_eq!(status, 200, "{v}");
    v
}

/// Streams a response and returns its events, checking the key stayed out.
async fn response_events(
    gw: &Gateway,
    mut body: Value,
) -> Vec<(String, Value)> {
    body["stream"] = json!(true);
    let rsp = gw.post(&gw.key, RESPONSES, &body).await;
    assert_eq!(rsp.status(), 200);
    let text = rsp.text().await.unwrap();
    assert!(!text.contains(TEST_KEY), "the key leaked: {text}");
    parse_sse(&text)
}

fn output_text(r: &Value) -> String {
    r["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["text"].as_str().map(str::to_string))
        .collect()
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

#[tokio::test]
async fn text_answers_on_both_front_ends_json_and_streaming() {
    let (gw, fake) = setup!();

    let r = ok(&gw, RESPONSES, json!({"model": MODEL, "input": "hello there"}))
        .await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["provider"], "claude");
    assert_eq!(output_text(&r), "You said: hello there");
    let sent = fake.last();
    assert_eq!(sent.header("x-api-key").as_deref(), Some(TEST_KEY));
    assert_eq!(sent.header("anthropic-version").as_deref(), Some("2023-06-01"));
    assert_eq!(sent.header("accept").as_deref(), Some("application/json"));
    assert!(sent.header("anthropic-beta").is_none());
    assert_eq!(sent.body["model"], "claude-sonnet-test");
    assert_eq!(sent.body["max_tokens"], 4096);
    assert_eq!(sent.body["stream"], false);
    assert_eq!(
        sent.body["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "hello there"}]}])
    );

    let evs =
        response_events(&gw, json!({"model": MODEL, "input": "hello stream"}))
            .await;
    assert_consecutive(&evs, 0);
    let text: String = evs
        .iter()
        .filter(|(_, v)| v["type"] == "response.output_text.delta")
        .map(|(_, v)| v["delta"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(text, "You said: hello stream");
    assert_eq!(evs.last().unwrap().1["type"], "response.completed");
    let sent = fake.last();
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.header("accept").as_deref(), Some("text/event-stream"));

    let c = ok(&gw, CHAT, json!({"model": MODEL, "messages": user("hi chat")}))
        .await;
    assert_eq!(c["choices"][0]["message"]["content"], "You said: hi chat");
    assert_eq!(c["choices"][0]["finish_reason"], "stop");

    let cs = chunks(
        gw.post(
            &gw.key,
            CHAT,
            &json!({"model": MODEL, "messages": user("hi chat stream"),
            "stream": true, "stream_options": {"include_usage": true}}),
        )
        .await,
    )
    .await;
    assert_eq!(streamed_text(&cs), "You said: hi chat stream");
    assert_eq!(finish_reasons(&cs), ["stop"]);
    assert_eq!(cs.last().unwrap(), "[DONE]");
    let usage = cs.iter().rev().find(|c| c["usage"].is_object()).unwrap();
    assert_eq!(usage["usage"]["prompt_tokens"], 3);
    assert_eq!(usage["usage"]["completion_tokens"], 5);
}

#[tokio::test]
async fn instructions_system_and_developer_messages_stay_separate_system_blocks()
 {
    let (gw, fake) = setup!();
    ok(
        &gw,
        RESPONSES,
        json!({"model": MODEL, "instructions": "Be brief.", "input": [
            {"role": "developer", "content": "Dev rules."},
            {"role": "system", "content": "Sys rules."},
            {"role": "user", "content": "go"}]}),
    )
    .await;
    assert_eq!(
        fake.last().body["system"],
        json!([{"type": "text", "text": "Be brief."},
               {"type": "text", "text": "Dev rules."},
               {"type": "text", "text": "Sys rules."}])
    );
    ok(
        &gw,
        CHAT,
        json!({"model": MODEL, "messages": [
            {"role": "system", "content": "Only one."},
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"}],
            "stop": ["END"], "user": "u-42", "temperature": 0.3, "max_tokens": 99}),
    )
    .await;
    let b = fake.last().body;
    assert_eq!(b["system"], "Only one.");
    // Same-role neighbours merge: Anthropic wants alternation.
    assert_eq!(
        b["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "a"},
                                              {"type": "text", "text": "b"}]}])
    );
    assert_eq!(b["stop_sequences"], json!(["END"]));
    assert_eq!(b["metadata"], json!({"user_id": "u-42"}));
    assert_eq!(b["temperature"], 0.3);
    assert_eq!(b["max_tokens"], 99);
}

#[tokio::test]
async fn images_are_sent_as_base64_and_url_sources() {
    let (gw, fake) = setup!();
    let c = ok(
        &gw,
        CHAT,
        json!({"model": MODEL, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}]}),
    )
    .await;
    assert_eq!(c["choices"][0]["message"]["content"], "You said: what is this");
    assert_eq!(
        fake.last().body["messages"][0]["content"],
        json!([
            {"type": "text", "text": "what is this"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
        ])
    );
    ok(
        &gw,
        RESPONSES,
        json!({"model": MODEL, "input": [{"role": "user", "content": [
            {"type": "input_text", "text": "and this"},
            {"type": "input_image", "image_url": "data:image/jpeg;base64,/9j/4AAQ"}]}]}),
    )
    .await;
    assert_eq!(
        fake.last().body["messages"][0]["content"][1],
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                           "data": "/9j/4AAQ"}})
    );
    // A data URI that is not base64 cannot be expressed: the client's to fix.
    let (status, e) = post(
        &gw,
        CHAT,
        json!({"model": MODEL, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png,raw"}}]}]}),
    )
    .await;
    assert_eq!(status, 400, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("base64"), "{e}");
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}])
}

#[tokio::test]
async fn chat_tool_round_trip_streams_argument_fragments_then_answers_the_result()
 {
    let (gw, fake) = setup!();
    let cs = chunks(
        gw.post(&gw.key, CHAT, &json!({"model": MODEL, "messages": user("CALL weather"),
            "tools": weather_tool(), "parallel_tool_calls": false, "stream": true}))
            .await,
    )
    .await;
    let calls: Vec<&Value> = cs
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(calls[0]["id"], "toolu_fake_0");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let fragments: Vec<&str> = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .filter(|a| !a.is_empty())
        .collect();
    assert!(
        fragments.len() >= 3,
        "arguments streamed in pieces: {fragments:?}"
    );
    assert_eq!(fragments.concat(), r#"{"q":"CALL weather"}"#);
    assert_eq!(finish_reasons(&cs), ["tool_calls"]);
    let sent = fake.last().body;
    assert_eq!(
        sent["tools"],
        json!([{"name": "get_weather", "description": "Weather of a city",
                "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}])
    );
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );

    let c = ok(
        &gw,
        CHAT,
        json!({"model": MODEL, "tools": weather_tool(), "messages": [
            {"role": "user", "content": "CALL weather"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "toolu_fake_0",
                "type": "function", "function": {"name": "get_weather",
                "arguments": r#"{"q":"CALL weather"}"#}}]},
            {"role": "tool", "tool_call_id": "toolu_fake_0", "content": "sunny"}]}),
    )
    .await;
    assert_eq!(
        c["choices"][0]["message"]["content"], "Tool said: sunny",
        "{c}"
    );
    let sent = fake.last().body;
    assert_eq!(
        sent["messages"][1]["content"],
        json!([{"type": "tool_use", "id": "toolu_fake_0", "name": "get_weather",
                "input": {"q": "CALL weather"}}])
    );
    assert_eq!(
        sent["messages"][2],
        json!({"role": "user", "content": [{"type": "tool_result",
            "tool_use_id": "toolu_fake_0", "content": "sunny"}]})
    );

    // `required` is Anthropic's `any`, and a whole answer calls as well.
    let c = ok(
        &gw,
        CHAT,
        json!({"model": MODEL, "messages": user("now"), "tools": weather_tool(),
               "tool_choice": "required"}),
    )
    .await;
    assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
    let call = &c["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["arguments"], r#"{"q":"now"}"#);
    assert_eq!(fake.last().body["tool_choice"], json!({"type": "any"}));
}

#[tokio::test]
async fn chained_responses_replay_thinking_with_its_signature() {
    let (gw, fake) = setup!();
    for stream in [false, true] {
        let body = json!({"model": MODEL, "input": "THINK about cats",
            "reasoning": {"effort": "low"}, "store": true});
        let first = if stream {
            let evs = response_events(&gw, body).await;
            let (_, last) = evs.last().unwrap();
            assert_eq!(last["type"], "response.completed", "{last}");
            last["response"].clone()
        } else {
            ok(&gw, RESPONSES, body).await
        };
        let sent = fake.last().body;
        assert_eq!(
            sent["thinking"],
            json!({"type": "enabled", "budget_tokens": 1024})
        );
        let out = first["output"].as_array().unwrap();
        assert_eq!(out[0]["type"], "reasoning", "{first}");
        assert_eq!(out[0]["content"][0]["text"], anthropic::THINKING);
        assert_eq!(
            out[0]["encrypted_content"],
            format!(
                "anthropic:thinking:{}",
                anthropic::signature(anthropic::THINKING)
            )
        );
        assert_eq!(output_text(&first), "You said: THINK about cats");

        let second = ok(
            &gw,
            RESPONSES,
            json!({"model": MODEL, "input": "and dogs?", "reasoning": {"effort": "low"},
                   "previous_response_id": first["id"]}),
        )
        .await;
        assert_eq!(
            output_text(&second),
            "You said: and dogs?",
            "stream={stream}"
        );
        let sent = fake.last().body;
        assert_eq!(
            sent["messages"][1],
            json!({"role": "assistant", "content": [
                {"type": "thinking", "thinking": anthropic::THINKING,
                 "signature": anthropic::signature(anthropic::THINKING)},
                {"type": "text", "text": "You said: THINK about cats"}]}),
            "stream={stream}"
        );
    }
    // Reasoning another provider produced is never sent to Anthropic.
    let r = ok(
        &gw,
        RESPONSES,
        json!({"model": MODEL, "input": [
            {"role": "user", "content": "q"},
            {"type": "reasoning", "id": "rs_other", "summary": [],
             "content": [{"type": "reasoning_text", "text": "foreign"}],
             "encrypted_content": "gAAAA-openai"},
            {"role": "assistant", "content": "a"},
            {"role": "user", "content": "next"}]}),
    )
    .await;
    assert_eq!(r["status"], "completed");
    let sent = fake.last().body;
    assert_eq!(
        sent["messages"][1]["content"],
        json!([{"type": "text", "text": "a"}])
    );
}

#[tokio::test]
async fn redacted_thinking_round_trips_as_redacted_thinking() {
    let (gw, fake) = setup!();
    let first =
        ok(&gw, RESPONSES, json!({"model": MODEL, "input": "REDACT x"})).await;
    let out = first["output"].as_array().unwrap();
    assert_eq!(out[0]["type"], "reasoning");
    assert_eq!(
        out[0]["encrypted_content"],
        format!("anthropic:redacted:{}", anthropic::REDACTED)
    );
    ok(
        &gw,
        RESPONSES,
        json!({"model": MODEL, "input": "more", "previous_response_id": first["id"]}),
    )
    .await;
    assert_eq!(
        fake.last().body["messages"][1]["content"][0],
        json!({"type": "redacted_thinking", "data": anthropic::REDACTED})
    );
}

#[tokio::test]
async fn cache_reads_and_writes_count_as_input_and_cached_tokens() {
    let (gw, _fake) = setup!();
    // "CACHE hit me" is 3 words; the reply "You said: CACHE hit me" 5.
    let input = 3 + anthropic::CACHE_READ + anthropic::CACHE_WRITE;
    let r =
        ok(&gw, RESPONSES, json!({"model": MODEL, "input": "CACHE hit me"}))
            .await;
    assert_eq!(r["usage"]["input_tokens"], input, "{r}");
    assert_eq!(
        r["usage"]["input_tokens_details"]["cached_tokens"],
        anthropic::CACHE_READ
    );
    assert_eq!(r["usage"]["output_tokens"], 5);
    assert_eq!(r["usage"]["total_tokens"], input + 5);
    let evs =
        response_events(&gw, json!({"model": MODEL, "input": "CACHE hit me"}))
            .await;
    let usage = &evs.last().unwrap().1["response"]["usage"];
    assert_eq!(usage["input_tokens"], input, "{usage}");
    assert_eq!(
        usage["input_tokens_details"]["cached_tokens"],
        anthropic::CACHE_READ
    );
    assert_eq!(usage["output_tokens"], 5);
    let c = ok(
        &gw,
        CHAT,
        json!({"model": MODEL, "messages": user("CACHE hit me")}),
    )
    .await;
    assert_eq!(c["usage"]["prompt_tokens"], input);
    assert_eq!(
        c["usage"]["prompt_tokens_details"]["cached_tokens"],
        anthropic::CACHE_READ
    );
    assert_eq!(c["usage"]["completion_tokens"], 5);
    let cs = chunks(
        gw.post(
            &gw.key,
            CHAT,
            &json!({"model": MODEL, "messages": user("CACHE hit me"),
            "stream": true, "stream_options": {"include_usage": true}}),
        )
        .await,
    )
    .await;
    let u = &cs.iter().rev().find(|c| c["usage"].is_object()).unwrap()["usage"];
    assert_eq!(u["prompt_tokens"], input, "{u}");
    assert_eq!(u["completion_tokens"], 5);
}

#[tokio::test]
async fn token_limits_and_refusals_end_incomplete_or_filtered() {
    let (gw, fake) = setup!();
    let long: String = (0..30).map(|i| format!("w{i} ")).collect();
    let r = ok(
        &gw,
        RESPONSES,
        json!({"model": MODEL, "input": long, "max_output_tokens": 16}),
    )
    .await;
    assert_eq!(r["status"], "incomplete", "{r}");
    assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(output_text(&r).split_whitespace().count(), 16);
    assert_eq!(fake.last().body["max_tokens"], 16);
    let evs = response_events(
        &gw,
        json!({"model": MODEL, "input": long, "max_output_tokens": 16}),
    )
    .await;
    let last = &evs.last().unwrap().1;
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );

    let c = ok(
        &gw,
        CHAT,
        json!({"model": MODEL, "messages": user("one two three four"), "max_completion_tokens": 2}),
    )
    .await;
    assert_eq!(c["choices"][0]["finish_reason"], "length");
    let cs = chunks(
        gw.post(
            &gw.key,
            CHAT,
            &json!({"model": MODEL, "messages": user("one two three"),
            "max_tokens": 2, "stream": true}),
        )
        .await,
    )
    .await;
    assert_eq!(finish_reasons(&cs), ["length"]);

    let c = ok(
        &gw,
        CHAT,
        json!({"model": MODEL, "messages": user("REFUSE please")}),
    )
    .await;
    assert_eq!(c["choices"][0]["finish_reason"], "content_filter");
    let cs = chunks(
        gw.post(
            &gw.key,
            CHAT,
            &json!({"model": MODEL, "messages": user("REFUSE please"),
            "stream": true}),
        )
        .await,
    )
    .await;
    assert_eq!(finish_reasons(&cs), ["content_filter"]);
    let r =
        ok(&gw, RESPONSES, json!({"model": MODEL, "input": "REFUSE please"}))
            .await;
    assert_eq!(r["status"], "incomplete");
    assert_eq!(r["incomplete_details"]["reason"], "content_filter");
}

#[tokio::test]
async fn upstream_failures_before_output_are_json_errors() {
    let (gw, _fake) = setup!();
    // (marker, status to the client, error type, retry-after)
    let table = [
        ("FAULT:429", 429, "rate_limit_error", Some("7")),
        ("FAULT:529", 503, "server_error", None),
        ("FAULT:500", 502, "server_error", None),
        ("FAULT:401", 502, "server_error", None),
    ];
    for (marker, status, kind, retry) in table {
        for stream in [false, true] {
            for (path, body) in [
                (
                    RESPONSES,
                    json!({"model": MODEL, "input": marker, "stream": stream}),
                ),
                (
                    CHAT,
                    json!({"model": MODEL, "messages": user(marker), "stream": stream}),
                ),
            ] {
                let rsp = gw.post(&gw.key, path, &body).await;
                let row = format!("{marker} {path} stream={stream}");
                assert_eq!(rsp.status().as_u16(), status, "{row}");
                assert_eq!(
                    rsp.headers()
                        .get("retry-after")
                        .map(|v| v.to_str().unwrap()),
                    retry,
                    "{row}"
                );
                let text = rsp.text().await.unwrap();
                assert!(
                    !text.contains(TEST_KEY),
                    "{row}: the key leaked: {text}"
                );
                let e: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(e["error"]["type"], kind, "{row}: {e}");
            }
        }
    }
}

#[tokio::test]
async fn a_mid_stream_error_event_fails_the_stream_on_both_front_ends() {
    let (gw, _fake) = setup!();
    let evs =
        response_events(&gw, json!({"model": MODEL, "input": "MIDERROR now"}))
            .await;
    assert_consecutive(&evs, 0);
    let (name, last) = evs.last().unwrap();
    assert_eq!(name, "error", "{:?}", types(&evs));
    assert_eq!(last["code"], "server_error");
    // Our words and the upstream's code; its text stays in the log.
    let message = last["message"].as_str().unwrap();
    assert!(message.contains("(code: overloaded_error)"), "{last}");
    assert!(!message.contains("Overloaded"), "{last}");
    assert!(!message.contains("org-acme") && !message.contains("sk-proj"));
    assert!(types(&evs).contains(&"response.output_text.delta".to_string()));
    assert!(!types(&evs).contains(&"response.completed".to_string()));

    let cs = chunks(
        gw.post(
            &gw.key,
            CHAT,
            &json!({"model": MODEL, "messages": user("MIDERROR now"),
            "stream": true}),
        )
        .await,
    )
    .await;
    assert_eq!(cs.last().unwrap(), "[DONE]");
    let err = &cs[cs.len() - 2];
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains("(code: overloaded_error)"), "{err}");
    assert!(!message.contains("Overloaded"), "{err}");
    assert!(!message.contains("org-acme") && !message.contains("sk-proj"));
    assert_eq!(streamed_text(&cs), "Partial ");
    assert!(finish_reasons(&cs).is_empty());
}

#[tokio::test]
async fn json_schema_output_uses_structured_outputs() {
    let (gw, fake) = setup!();
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"},
        "age": {"type": "integer"}}, "required": ["name", "age"],
        "additionalProperties": false});
    let r = ok(
        &gw,
        RESPONSES,
        json!({"model": MODEL, "input": "who?", "text": {"format": {"type": "json_schema",
            "name": "person", "schema": schema, "strict": true}}}),
    )
    .await;
    assert_eq!(output_text(&r), anthropic::JSON_REPLY);
    let sent = fake.last();
    assert_eq!(
        sent.body["output_config"],
        json!({"format": {"type": "json_schema", "schema": schema}})
    );
    assert!(sent.header("anthropic-beta").is_none());
}

#[tokio::test]
async fn models_lists_configured_and_discovered_anthropic_models() {
    let fake = FakeAnthropic::start(Some(TEST_KEY)).await;
    let mut cfg = anthropic::config(&fake);
    cfg.discover_models = true;
    cfg.beta = vec!["feature-a".into(), "feature-b".into()];
    let gw = gateway!(Options {
        extra_providers: vec![(
            "claude".into(),
            ProviderConfig::Anthropic(cfg)
        )],
        ..Options::default()
    });
    let list: Value = gw.get(&gw.key, "/v1/models").await.json().await.unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .filter(|id| id.starts_with("claude/"))
        .collect();
    assert_eq!(
        ids,
        [
            "claude/claude-listed",
            "claude/claude-fake-large",
            "claude/claude-fake-small"
        ]
    );
    let asked = fake.all_requests();
    assert_eq!(asked[0].route, "GET /v1/models");
    assert_eq!(asked[0].header("x-api-key").as_deref(), Some(TEST_KEY));
    assert_eq!(
        asked[0].header("anthropic-beta").as_deref(),
        Some("feature-a,feature-b")
    );
    ok(&gw, CHAT, json!({"model": MODEL, "messages": user("x")})).await;
    assert_eq!(
        fake.last().header("anthropic-beta").as_deref(),
        Some("feature-a,feature-b")
    );
}

#[tokio::test]
async fn chat_reasoning_effort_thinks_and_answers_reasoning_content() {
    let (gw, fake) = setup!();
    let c = ok(
        &gw,
        CHAT,
        json!({"model": MODEL, "messages": user("THINK hard"), "reasoning_effort": "medium"}),
    )
    .await;
    let m = &c["choices"][0]["message"];
    assert_eq!(m["reasoning_content"], anthropic::THINKING, "{c}");
    assert_eq!(m["content"], "You said: THINK hard");
    let sent = fake.last().body;
    assert_eq!(
        sent["thinking"],
        json!({"type": "enabled", "budget_tokens": 4095})
    );
    assert_eq!(sent["max_tokens"], 4096);
    let cs = chunks(
        gw.post(&gw.key, CHAT, &json!({"model": MODEL, "messages": user("THINK hard"),
            "reasoning_effort": "high", "max_completion_tokens": 20000, "stream": true}))
            .await,
    )
    .await;
    let reasoning: String = cs
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str())
        .collect();
    assert_eq!(reasoning, anthropic::THINKING);
    assert_eq!(
        fake.last().body["thinking"],
        json!({"type": "enabled", "budget_tokens": 16384})
    );
}

/// The fake must refuse what Anthropic refuses, or the tests above would
/// prove nothing: one row per rule, sent to the fake directly.
#[tokio::test]
async fn the_fake_refuses_what_anthropic_refuses() {
    let fake = FakeAnthropic::start(Some(TEST_KEY)).await;
    let url = format!("{}/v1/messages", fake.base_url());
    let user_text = |t: &str| json!({"role": "user", "content": t});
    let sig = anthropic::signature("t");
    let call = json!({"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]});
    let result = json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "r"}]});
    let tools = json!([{"name": "f", "input_schema": {"type": "object"}}]);
    let thinking = json!({"type": "enabled", "budget_tokens": 1024});
    // (row, key, version header, body, status)
    let rows: Vec<(&str, &str, bool, Value, u16)> = vec![
        (
            "valid",
            TEST_KEY,
            true,
            json!({"model": "m", "max_tokens": 5,
            "messages": [user_text("hi")]}),
            200,
        ),
        (
            "wrong key",
            "nope",
            true,
            json!({"model": "m", "max_tokens": 5,
            "messages": [user_text("hi")]}),
            401,
        ),
        (
            "no version",
            TEST_KEY,
            false,
            json!({"model": "m", "max_tokens": 5,
            "messages": [user_text("hi")]}),
            400,
        ),
        (
            "no max_tokens",
            TEST_KEY,
            true,
            json!({"model": "m",
            "messages": [user_text("hi")]}),
            400,
        ),
        (
            "same role twice",
            TEST_KEY,
            true,
            json!({"model": "m", "max_tokens": 5,
            "messages": [user_text("a"), user_text("b")]}),
            400,
        ),
        (
            "empty text",
            TEST_KEY,
            true,
            json!({"model": "m", "max_tokens": 5,
            "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}),
            400,
        ),
        (
            "tool round trip",
            TEST_KEY,
            true,
            json!({"model": "m", "max_tokens": 50,
            "tools": tools, "messages": [user_text("q"), call, result]}),
            200,
        ),
        (
            "tool_result after text",
            TEST_KEY,
            true,
            json!({"model": "m", "max_tokens": 5,
            "tools": tools, "messages": [user_text("q"), call, {"role": "user", "content": [
                {"type": "text", "text": "x"},
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "r"}]}]}),
            400,
        ),
        (
            "call without result",
            TEST_KEY,
            true,
            json!({"model": "m", "max_tokens": 5,
            "tools": tools, "messages": [user_text("q"), call, user_text("x")]}),
            400,
        ),
        (
            "result without call",
            TEST_KEY,
            true,
            json!({"model": "m", "max_tokens": 5,
            "messages": [user_text("q"), {"role": "assistant", "content": "a"}, result]}),
            400,
        ),
        (
            "tool_choice without tools",
            TEST_KEY,
            true,
            json!({"model": "m", "max_tokens": 5,
            "tool_choice": {"type": "auto"}, "messages": [user_text("q")]}),
            400,
        ),
        (
            "budget not below max_tokens",
            TEST_KEY,
            true,
            json!({"model": "m",
            "max_tokens": 1024, "thinking": thinking, "messages": [user_text("q")]}),
            400,
        ),
        (
            "thinking with forced tool",
            TEST_KEY,
            true,
            json!({"model": "m",
            "max_tokens": 2000, "thinking": thinking, "tools": tools,
            "tool_choice": {"type": "any"}, "messages": [user_text("q")]}),
            400,
        ),
        (
            "tool_use turn without thinking",
            TEST_KEY,
            true,
            json!({"model": "m",
            "max_tokens": 2000, "thinking": thinking, "tools": tools,
            "messages": [user_text("q"), call, result]}),
            400,
        ),
        (
            "signed thinking before tool_use",
            TEST_KEY,
            true,
            json!({"model": "m",
            "max_tokens": 2000, "thinking": thinking, "tools": tools,
            "messages": [user_text("q"), {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "t", "signature": sig},
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]},
                result]}),
            200,
        ),
        (
            "forged signature",
            TEST_KEY,
            true,
            json!({"model": "m", "max_tokens": 5,
            "messages": [user_text("q"), {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "changed", "signature": sig},
                {"type": "text", "text": "a"}]}, user_text("x")]}),
            400,
        ),
        (
            "bad image source",
            TEST_KEY,
            true,
            json!({"model": "m", "max_tokens": 5,
            "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "data": "AA"}}]}]}),
            400,
        ),
    ];
    let client = http();
    let mut failures = Vec::new();
    for (row, key, version, body, want) in &rows {
        let mut req = client.post(&url).header("x-api-key", *key).json(body);
        if *version {
            req = req.header("anthropic-version", "2023-06-01");
        }
        let rsp = req.send().await.unwrap();
        let got = rsp.status().as_u16();
        let text = rsp.text().await.unwrap();
        if got != *want {
            failures.push(format!("{row}: got {got}, wanted {want}: {text}"));
        } else if got != 200 {
            let e: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(e["type"], "error", "{row}: {text}");
            assert!(e["error"]["message"].is_string(), "{row}: {text}");
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[tokio::test]
async fn without_a_configured_key_no_key_header_is_sent() {
    let fake = FakeAnthropic::start(None).await;
    let mut cfg = anthropic::config(&fake);
    cfg.api_key_env = None;
    cfg.anthropic_version = Some("2024-01-01".into());
    cfg.default_max_tokens = Some(77);
    let gw = gateway!(Options {
        extra_providers: vec![(
            "claude".into(),
            ProviderConfig::Anthropic(cfg)
        )],
        ..Options::default()
    });
    ok(&gw, CHAT, json!({"model": MODEL, "messages": user("x")})).await;
    let sent = fake.last();
    assert!(sent.header("x-api-key").is_none());
    assert_eq!(sent.header("anthropic-version").as_deref(), Some("2024-01-01"));
    assert_eq!(sent.body["max_tokens"], 77);
}
