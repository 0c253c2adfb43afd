//! End-to-end: a native Responses upstream (`kind = "openai-responses"`)
//! behind both front ends, over real HTTP against the fake Responses
//! upstream, which refuses anything stateful (`previous_response_id`,
//! `store` other than false, ids, encrypted reasoning it did not issue):
//! text, tools, a chained conversation with reasoning replay, usage,
//! length cuts, failures before and during the answer, and an Azure-style
//! configuration through the real binary.

use maniac_server::providers::ProviderConfig;
use maniac_server::providers::openai_responses::ResponsesConfig;
use maniac_tests::gateway;
use maniac_tests::harness::*;
use maniac_tests::responses_upstream::{
    FakeResponsesUpstream, MID_ERROR, REFUSAL, RESPONSES_MODELS, SUMMARY,
};
use serde_json::{Value, json};

const CHAT: &str = "/v1/chat/completions";
const RESPONSES: &str = "/v1/responses";

/// A gateway with provider `native` in front of a fresh fake.
async fn start() -> Option<(Gateway, FakeResponsesUpstream)> {
    let native = FakeResponsesUpstream::start().await;
    let mut cfg = ResponsesConfig::new(native.base_url());
    cfg.request_timeout_secs = Some(30);
    cfg.idle_timeout_secs = Some(30);
    let gw = Gateway::start_with(Options {
        extra_providers: vec![(
            "native".into(),
            ProviderConfig::OpenAiResponses(cfg),
        )],
        ..Options::default()
    })
    .await?;
    Some((gw, native))
}

macro_rules! setup {
    () => {
        match start().await {
            Some(s) => s,
            None => return,
        }
    };
}

async fn ok_json(gw: &Gateway, path: &str, body: Value) -> Value {
    let rsp = gw.post(&gw.key, path, &body).await;
    let status = rsp.status();
    let v: Value = rsp.json().await.expect("json");
    assert_eq!(status, 200, "{v}");
    v
}

/// The `data:` payloads of a chat chunk stream, `[DONE]` as a string.
async fn chunks(rsp: reqwest::Response) -> Vec<Value> {
    assert_eq!(rsp.status(), 200);
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

fn chat_text(cs: &[Value]) -> String {
    cs.iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

fn output_text(r: &Value) -> String {
    r["output"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["text"].as_str().map(str::to_string))
        .collect()
}

/// Asserts what every upstream call must be: stateless.
fn assert_stateless(sent: &Value) {
    assert_eq!(sent["store"], false, "{sent}");
    assert!(sent.get("previous_response_id").is_none(), "{sent}");
    for item in sent["input"].as_array().expect("input items") {
        assert!(item.get("id").is_none(), "no ids: {item}");
    }
}

#[tokio::test]
async fn text_through_both_front_ends_json_and_streaming() {
    let (gw, native) = setup!();
    let r = ok_json(
        &gw,
        RESPONSES,
        json!({"model": "native/gpt-x", "input": "hello there",
            "instructions": "be kind"}),
    )
    .await;
    assert_eq!(r["status"], "completed");
    assert_eq!(output_text(&r), "You said: hello there");
    let sent = &native.responses_requests()[0].body;
    assert_stateless(sent);
    assert_eq!(sent["model"], "gpt-x");
    assert_eq!(sent["stream"], false);
    assert_eq!(sent["instructions"], "be kind");
    assert_eq!(sent["input"][0]["content"][0]["text"], "hello there");

    let rsp = gw
        .post(
            &gw.key,
            RESPONSES,
            &json!({"model": "native/gpt-x",
            "input": "streamed hi", "stream": true}),
        )
        .await;
    assert_eq!(rsp.status(), 200);
    let evs = sse_events(rsp).await;
    assert_consecutive(&evs, 0);
    let kinds = types(&evs);
    assert_eq!(kinds.first().map(String::as_str), Some("response.created"));
    assert_eq!(kinds.last().map(String::as_str), Some("response.completed"));
    let deltas: String = evs
        .iter()
        .filter(|(_, v)| v["type"] == "response.output_text.delta")
        .map(|(_, v)| v["delta"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(deltas, "You said: streamed hi");
    assert!(
        kinds.iter().filter(|k| *k == "response.output_text.delta").count() > 1,
        "deltas are passed on as they come: {kinds:?}"
    );
    let last = &native.responses_requests()[1].body;
    assert_stateless(last);
    assert_eq!(last["stream"], true);

    let c = ok_json(
        &gw,
        CHAT,
        json!({"model": "native/gpt-x", "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "chat hi"}]}),
    )
    .await;
    assert_eq!(c["choices"][0]["message"]["content"], "You said: chat hi");
    assert_eq!(c["choices"][0]["finish_reason"], "stop");
    let cs = chunks(
        gw.post(
            &gw.key,
            CHAT,
            &json!({"model": "native/gpt-x",
            "messages": [{"role": "user", "content": "chat stream"}],
            "stream": true}),
        )
        .await,
    )
    .await;
    assert_eq!(chat_text(&cs), "You said: chat stream");
    assert_eq!(cs.last().unwrap(), "[DONE]");
    for r in native.responses_requests() {
        assert_stateless(&r.body);
    }
}

#[tokio::test]
async fn a_tool_round_trip_via_chat_streams_the_arguments() {
    let (gw, native) = setup!();
    let tools = json!([{"type": "function", "function": {"name": "weather",
        "description": "Weather of a city", "strict": true,
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}},
            "required": ["q"], "additionalProperties": false}}}]);
    let cs = chunks(
        gw.post(
            &gw.key,
            CHAT,
            &json!({"model": "native/m", "tools": tools,
            "tool_choice": "auto", "parallel_tool_calls": false,
            "messages": [{"role": "user", "content": "CALL weather in Oslo"}],
            "stream": true}),
        )
        .await,
    )
    .await;
    let fragments: Vec<&Value> = cs
        .iter()
        .flat_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .collect();
    assert!(fragments.len() > 2, "arguments streamed: {fragments:?}");
    let id = fragments[0]["id"].as_str().unwrap().to_string();
    assert_eq!(fragments[0]["function"]["name"], "weather");
    let args: String = fragments
        .iter()
        .filter_map(|f| f["function"]["arguments"].as_str())
        .collect();
    let parsed: Value = serde_json::from_str(&args).expect("arguments");
    assert_eq!(parsed["q"], "CALL weather in Oslo");
    let finish = cs
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str())
        .unwrap();
    assert_eq!(finish, "tool_calls");
    let sent = &native.responses_requests()[0].body;
    assert_eq!(sent["tools"][0]["type"], "function");
    assert_eq!(sent["tools"][0]["name"], "weather");
    assert_eq!(sent["tools"][0]["strict"], true);
    assert_eq!(sent["tool_choice"], "auto");
    assert_eq!(sent["parallel_tool_calls"], false);

    let c = ok_json(
        &gw,
        CHAT,
        json!({"model": "native/m", "tools": tools, "messages": [
            {"role": "user", "content": "CALL weather in Oslo"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": id,
                "type": "function", "function": {"name": "weather", "arguments": args}}]},
            {"role": "tool", "tool_call_id": id, "content": "sunny"}]}),
    )
    .await;
    assert_eq!(c["choices"][0]["message"]["content"], "Tool said: sunny");
    let sent = &native.responses_requests()[1].body;
    assert_stateless(sent);
    let kinds: Vec<&str> = sent["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["message", "function_call", "function_call_output"]);
    assert_eq!(sent["input"][1]["call_id"], id.as_str());
    assert_eq!(sent["input"][1]["arguments"], args.as_str());
    assert_eq!(sent["input"][2]["output"], "sunny");
}

#[tokio::test]
async fn a_chained_conversation_inlines_the_transcript_and_replays_reasoning() {
    let (gw, native) = setup!();
    for stream in [false, true] {
        native.clear();
        let body = json!({"model": "native/o", "input": "THINK about cats",
            "reasoning": {"effort": "low"}, "stream": stream});
        let first = if stream {
            let evs =
                sse_events(gw.post(&gw.key, RESPONSES, &body).await).await;
            let kinds = types(&evs);
            assert!(
                kinds.contains(&"response.reasoning_summary_text.delta".into()),
                "{kinds:?}"
            );
            evs.last().unwrap().1["response"].clone()
        } else {
            ok_json(&gw, RESPONSES, body).await
        };
        assert_eq!(first["output"][0]["type"], "reasoning", "{first}");
        assert_eq!(first["output"][0]["summary"][0]["text"], SUMMARY);
        assert_eq!(output_text(&first), "You said: THINK about cats");
        let sent = &native.responses_requests()[0].body;
        assert_eq!(sent["reasoning"]["effort"], "low");
        assert_eq!(sent["include"], json!(["reasoning.encrypted_content"]));

        let id = first["id"].as_str().unwrap();
        let second = ok_json(
            &gw,
            RESPONSES,
            json!({"model": "native/o", "previous_response_id": id,
                "input": "and dogs?", "stream": false}),
        )
        .await;
        assert_eq!(output_text(&second), "You said: and dogs?");
        let sent = &native.responses_requests()[1].body;
        assert_stateless(sent);
        let input = sent["input"].as_array().unwrap();
        let kinds: Vec<(&str, &str)> = input
            .iter()
            .map(|i| {
                (i["type"].as_str().unwrap(), i["role"].as_str().unwrap_or(""))
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("message", "user"),
                ("reasoning", ""),
                ("message", "assistant"),
                ("message", "user")
            ],
            "{sent}"
        );
        // Replayed with what the upstream issued (the fake refuses
        // anything else), untagged, and asked for again.
        let enc = input[1]["encrypted_content"].as_str().unwrap();
        assert!(enc.starts_with("enc-"), "{enc}");
        assert_eq!(input[1]["summary"][0]["text"], SUMMARY);
        assert_eq!(input[2]["content"][0]["type"], "output_text");
        assert_eq!(sent["include"], json!(["reasoning.encrypted_content"]));
    }
}

#[tokio::test]
async fn foreign_reasoning_goes_upstream_as_text_never_as_a_blob() {
    let (gw, native) = setup!();
    let r = ok_json(
        &gw,
        RESPONSES,
        json!({"model": "native/o", "input": [
            {"role": "user", "content": "hi"},
            {"type": "reasoning", "id": "rs_a1",
                "summary": [{"type": "summary_text", "text": "I pondered."}],
                "encrypted_content": "anthropic:c2lnbmF0dXJl"},
            {"type": "reasoning", "id": "rs_a2", "summary": [],
                "encrypted_content": "anthropic:b25seQ=="},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "again"}]}),
    )
    .await;
    assert_eq!(output_text(&r), "You said: again");
    let sent = &native.responses_requests()[0].body;
    assert!(!sent.to_string().contains("anthropic:"), "{sent}");
    let input = sent["input"].as_array().unwrap();
    assert_eq!(input.len(), 4, "the text-less blob is left out: {sent}");
    assert_eq!(input[1]["type"], "reasoning");
    assert_eq!(input[1]["summary"][0]["text"], "I pondered.");
    assert!(input[1].get("encrypted_content").is_none());
    assert!(sent.get("include").is_none());
}

#[tokio::test]
async fn usage_figures_reach_both_front_ends() {
    let (gw, _native) = setup!();
    // Input "THINK one two three" (4 words), output "You said: …" (6
    // words) plus the summary's 3 reasoning words; cached half the input.
    let r = ok_json(
        &gw,
        RESPONSES,
        json!({"model": "native/o", "input": "THINK one two three"}),
    )
    .await;
    let u = &r["usage"];
    assert_eq!(u["input_tokens"], 4, "{u}");
    assert_eq!(u["input_tokens_details"]["cached_tokens"], 2);
    assert_eq!(u["output_tokens"], 9);
    assert_eq!(u["output_tokens_details"]["reasoning_tokens"], 3);
    assert_eq!(u["total_tokens"], 13);

    let cs = chunks(
        gw.post(
            &gw.key,
            CHAT,
            &json!({"model": "native/o",
            "messages": [{"role": "user", "content": "THINK one two three"}],
            "stream": true, "stream_options": {"include_usage": true}}),
        )
        .await,
    )
    .await;
    let usage = cs
        .iter()
        .find_map(|c| c.get("usage").filter(|u| !u.is_null()))
        .expect("a usage chunk");
    assert_eq!(usage["prompt_tokens"], 4, "{usage}");
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 2);
    assert_eq!(usage["completion_tokens"], 9);
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 3);
}

#[tokio::test]
async fn a_token_limit_is_incomplete_on_responses_and_length_on_chat() {
    let (gw, native) = setup!();
    for stream in [false, true] {
        let body = json!({"model": "native/m", "input": "LONG",
            "max_output_tokens": 16, "stream": stream});
        let r = if stream {
            let evs =
                sse_events(gw.post(&gw.key, RESPONSES, &body).await).await;
            let (_, last) = evs.last().unwrap();
            assert_eq!(last["type"], "response.incomplete", "{last}");
            last["response"].clone()
        } else {
            ok_json(&gw, RESPONSES, body).await
        };
        assert_eq!(r["status"], "incomplete", "{r}");
        assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(output_text(&r).split_whitespace().count(), 16);
        let c = ok_json(
            &gw,
            CHAT,
            json!({"model": "native/m", "max_completion_tokens": 16,
                "messages": [{"role": "user", "content": "LONG"}]}),
        )
        .await;
        assert_eq!(c["choices"][0]["finish_reason"], "length", "{c}");
    }
    let sent = &native.responses_requests()[0].body;
    assert_eq!(sent["max_output_tokens"], 16);
}

#[tokio::test]
async fn failures_before_output_are_json_errors_with_the_status() {
    let (gw, _native) = setup!();
    for stream in [false, true] {
        for path in [RESPONSES, CHAT] {
            let body = |text: &str| {
                if path == CHAT {
                    json!({"model": "native/m", "stream": stream,
                        "messages": [{"role": "user", "content": text}]})
                } else {
                    json!({"model": "native/m", "stream": stream, "input": text})
                }
            };
            let rsp = gw.post(&gw.key, path, &body("FAULT:429")).await;
            assert_eq!(rsp.status(), 429, "{path} stream={stream}");
            assert_eq!(rsp.headers()["retry-after"], "7");
            assert!(
                rsp.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/json")
            );
            let e: Value = rsp.json().await.unwrap();
            assert!(e["error"]["message"].is_string(), "{e}");
            let rsp = gw.post(&gw.key, path, &body("FAULT:500")).await;
            assert_eq!(rsp.status(), 502, "{path} stream={stream}");
            let e: Value = rsp.json().await.unwrap();
            assert!(e["error"]["message"].is_string(), "{e}");
        }
    }
}

#[tokio::test]
async fn a_failure_mid_stream_ends_with_an_error_never_a_success() {
    let (gw, _native) = setup!();
    let evs = sse_events(
        gw.post(
            &gw.key,
            RESPONSES,
            &json!({"model": "native/m",
            "input": "MIDERROR now", "stream": true}),
        )
        .await,
    )
    .await;
    let kinds = types(&evs);
    assert!(kinds.contains(&"response.output_text.delta".to_string()));
    assert!(!kinds.contains(&"response.completed".to_string()), "{kinds:?}");
    let (_, last) = evs.last().unwrap();
    let terminal = last["type"].as_str().unwrap();
    assert!(terminal == "response.failed" || terminal == "error", "{kinds:?}");
    // The upstream's code, never its text (it names its organization).
    assert!(last.to_string().contains("(code: server_error)"), "{last}");
    assert!(!last.to_string().contains("org-acme-internal"), "{last}");
    assert!(!last.to_string().contains(MID_ERROR), "{last}");

    let cs = chunks(
        gw.post(
            &gw.key,
            CHAT,
            &json!({"model": "native/m", "stream": true,
            "messages": [{"role": "user", "content": "MIDERROR now"}]}),
        )
        .await,
    )
    .await;
    assert_eq!(cs.last().unwrap(), "[DONE]");
    let err = &cs[cs.len() - 2];
    assert!(err["error"]["message"].is_string(), "{err}");
    assert!(cs.iter().all(|c| c["choices"][0]["finish_reason"] != "stop"));

    // Not streamed: a `failed` Response is no success either.
    let rsp = gw
        .post(
            &gw.key,
            CHAT,
            &json!({"model": "native/m",
            "messages": [{"role": "user", "content": "MIDERROR now"}]}),
        )
        .await;
    assert!(rsp.status().is_server_error(), "{}", rsp.status());
}

#[tokio::test]
async fn structured_output_and_sampling_reach_the_upstream() {
    let (gw, native) = setup!();
    ok_json(
        &gw,
        RESPONSES,
        json!({"model": "native/m", "input": "hi", "temperature": 0.5,
            "top_p": 0.9, "user": "u-7",
            "text": {"format": {"type": "json_schema", "name": "person",
                "schema": {"type": "object"}, "strict": true}}}),
    )
    .await;
    let sent = &native.responses_requests()[0].body;
    assert_eq!(sent["temperature"], 0.5);
    assert_eq!(sent["top_p"], 0.9);
    assert_eq!(sent["user"], "u-7");
    assert_eq!(
        sent["text"]["format"],
        json!({"type": "json_schema", "name": "person",
            "schema": {"type": "object"}, "strict": true})
    );
    ok_json(
        &gw,
        CHAT,
        json!({"model": "native/m", "response_format": {"type": "json_object"},
            "presence_penalty": 0.5, "service_tier": "flex", "seed": 3,
            "messages": [{"role": "user", "content": "json please"}]}),
    )
    .await;
    let sent = &native.responses_requests()[1].body;
    assert_eq!(sent["text"]["format"]["type"], "json_object");
    assert_eq!(sent["service_tier"], "flex");
    // Not in the Responses API: left out rather than refused upstream.
    assert!(sent.get("presence_penalty").is_none(), "{sent}");
    assert!(sent.get("seed").is_none(), "{sent}");
}

#[tokio::test]
async fn the_upstream_models_are_listed_when_discovered() {
    let native = FakeResponsesUpstream::start().await;
    let mut cfg = ResponsesConfig::new(native.base_url());
    cfg.models = vec!["pinned".into()];
    cfg.discover_models = true;
    let gw = gateway!(Options {
        extra_providers: vec![(
            "native".into(),
            ProviderConfig::OpenAiResponses(cfg)
        )],
        ..Options::default()
    });
    let list: Value = gw.get(&gw.key, "/v1/models").await.json().await.unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .filter(|id| id.starts_with("native/"))
        .collect();
    let mut want = vec!["native/pinned".to_string()];
    want.extend(RESPONSES_MODELS.iter().map(|m| format!("native/{m}")));
    assert_eq!(ids, want);
}

/// Through the real binary and a TOML file: the key from the
/// environment in Azure's `api-key` header, `api-version` on every URL,
/// an extra header; the key in no answer and no log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_azure_style_config_reaches_the_upstream_as_configured() {
    use maniac_tests::process::{Maniac, write_config};
    let Some(db) = TestDb::create().await else { return };
    let native = FakeResponsesUpstream::start().await;
    let secret = "azure-secret-key-1234567890";
    native.require_key(secret, true);
    let dir = std::env::temp_dir().join(format!(
        "maniac-azure-{}-{}",
        std::process::id(),
        maniac_server::ids::random_hex(4)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let extra = format!(
        "[providers.azure]\nkind = \"openai-responses\"\n\
         base_url = \"{}\"\napi_key_env = \"MANIAC_TEST_AZURE_KEY\"\n\
         auth = \"api-key\"\ndiscover_models = true\n\
         query = {{ api-version = \"2025-04-01-preview\" }}\n\
         headers = {{ x-ms-useragent = \"maniac-test\" }}\n",
        native.base_url()
    );
    let config = write_config(&dir, "http://127.0.0.1:9/v1", &extra);
    let gw =
        Maniac::serve(&db.url, &config, &[("MANIAC_TEST_AZURE_KEY", secret)]);
    let key = gw.bootstrap_key.clone().expect("bootstrap key");
    let mut answers = String::new();
    for (path, body) in [
        (RESPONSES, json!({"model": "azure/gpt-4o", "input": "hi azure"})),
        (
            RESPONSES,
            json!({"model": "azure/gpt-4o", "input": "FAULT:500", "stream": true}),
        ),
        (
            CHAT,
            json!({"model": "azure/gpt-4o", "stream": true,
            "messages": [{"role": "user", "content": "hi chat"}]}),
        ),
        (RESPONSES, json!({"model": "azure/gpt-4o", "input": "ECHOKEY"})),
        (
            CHAT,
            json!({"model": "azure/gpt-4o", "stream": true,
            "messages": [{"role": "user", "content": "ECHOKEY"}]}),
        ),
    ] {
        let rsp = http()
            .post(format!("{}{path}", gw.base))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        answers.push_str(&rsp.text().await.unwrap());
    }
    assert!(answers.contains("You said: hi azure"), "{answers}");
    assert!(answers.contains(r#""content":"chat""#), "{answers}");
    let list = http()
        .get(format!("{}/v1/models", gw.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(list.contains("azure/native-large"), "{list}");
    answers.push_str(&list);

    let reqs = native.requests();
    assert!(reqs.len() >= 4, "{reqs:?}");
    for r in &reqs {
        assert_eq!(r.header("api-key"), Some(secret), "{}", r.target);
        assert!(r.header("authorization").is_none(), "{}", r.target);
        assert_eq!(r.header("x-ms-useragent"), Some("maniac-test"));
        assert_eq!(
            r.query.as_deref(),
            Some("api-version=2025-04-01-preview"),
            "{}",
            r.target
        );
    }
    assert!(reqs.iter().any(|r| r.target == "GET /v1/models"));
    // The echoed key reaches neither the client (which never sees upstream
    // text) nor the log (which has that text, scrubbed).
    assert!(!answers.contains(secret), "the key leaked into an answer");
    assert!(!answers.contains("[redacted]"), "upstream text in an answer");
    let log = gw.log();
    assert!(!log.contains(secret), "the key leaked into the log");
    assert!(log.contains("[redacted]"), "the log has the scrubbed text");
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The fake refuses what a stateless client must never send, so the
/// tests above prove the gateway sends none of it.
#[tokio::test]
async fn the_fake_refuses_stateful_requests() {
    let native = FakeResponsesUpstream::start().await;
    let url = format!("{}/responses", native.base_url());
    let user = json!({"role": "user", "content": "hi"});
    let table = [
        (json!({"model": "m", "input": [user], "store": false}), None),
        (json!({"model": "m", "input": [user]}), Some("store")),
        (json!({"model": "m", "input": [user], "store": true}), Some("store")),
        (
            json!({"model": "m", "input": [user], "store": false,
                "previous_response_id": "resp_1"}),
            Some("previous_response_id"),
        ),
        (
            json!({"model": "m", "store": false, "input": [user,
                {"type": "reasoning", "summary": [], "encrypted_content": "forged"}]}),
            Some("input[1].encrypted_content"),
        ),
        (
            json!({"model": "m", "store": false, "input": [user,
                {"type": "reasoning", "id": "rs_1", "summary": []}]}),
            Some("input[1]"),
        ),
    ];
    let mut failures = Vec::new();
    for (body, param) in &table {
        let rsp = http().post(&url).json(body).send().await.unwrap();
        let status = rsp.status().as_u16();
        let v: Value = rsp.json().await.unwrap();
        let ok = match param {
            None => status == 200,
            Some(p) => status == 400 && v["error"]["param"] == *p,
        };
        if !ok {
            failures.push(format!("{body} -> {status} {v}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn refusals_arrive_as_refusals_on_both_front_ends() {
    let (gw, _native) = setup!();
    for stream in [false, true] {
        let body = json!({"model": "native/m", "input": "REFUSE this",
            "stream": stream});
        let r = if stream {
            let evs =
                sse_events(gw.post(&gw.key, RESPONSES, &body).await).await;
            let kinds = types(&evs);
            assert!(
                kinds.contains(&"response.refusal.delta".into()),
                "{kinds:?}"
            );
            evs.last().unwrap().1["response"].clone()
        } else {
            ok_json(&gw, RESPONSES, body).await
        };
        let part = &r["output"][0]["content"][0];
        assert_eq!(part["type"], "refusal", "{r}");
        assert_eq!(part["refusal"], REFUSAL);
    }
    let c = ok_json(
        &gw,
        CHAT,
        json!({"model": "native/m",
            "messages": [{"role": "user", "content": "REFUSE this"}]}),
    )
    .await;
    assert_eq!(c["choices"][0]["message"]["refusal"], REFUSAL, "{c}");
}
