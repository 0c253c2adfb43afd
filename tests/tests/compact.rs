//! End-to-end: `POST /v1/responses/compact` and
//! `POST /v1/responses/input_tokens` over real HTTP against a real gateway
//! and fake upstreams: what the model is asked, what comes back, how a
//! compaction item starts a new chain, who can open it (its organization,
//! every replica of the database, only the configured key), and counts
//! by tokenizer and by Anthropic's own counter.

use maniac_server::providers::ProviderConfig;
use maniac_server::server::{self, ServeOptions};
use maniac_tests::anthropic::{self, FakeAnthropic, TEST_KEY};
use maniac_tests::gateway;
use maniac_tests::harness::*;
use serde_json::{Value, json};

const COMPACT: &str = "/v1/responses/compact";
const COUNT: &str = "/v1/responses/input_tokens";

async fn post(
    gw: &Gateway,
    key: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let rsp = gw.post(key, path, &body).await;
    let status = rsp.status().as_u16();
    (status, rsp.json().await.expect("JSON answer"))
}

fn conversation() -> Value {
    json!([
        {"role": "user", "content": [
            {"type": "input_text", "text": "Remember the code word: slate."}]},
        {"role": "assistant", "content": [
            {"type": "output_text", "text": "OK."}]},
        {"role": "user", "content": "Compress this conversation."},
    ])
}

/// Compacts [`conversation`] with `fake/m`; the answer must be a 200.
async fn compact(gw: &Gateway, key: &str) -> Value {
    let body = json!({"model": "fake/m", "input": conversation()});
    let (status, c) = post(gw, key, COMPACT, body).await;
    assert_eq!(status, 200, "{c}");
    c
}

/// The system and user texts of the last chat request upstream.
fn last_messages(gw: &Gateway) -> Vec<(String, String)> {
    let req = gw.upstream.requests().pop().expect("an upstream request");
    req.body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            let text = match &m["content"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join(""),
                _ => String::new(),
            };
            (m["role"].as_str().unwrap_or("").to_string(), text)
        })
        .collect()
}

#[tokio::test]
async fn compaction_keeps_the_user_messages_and_seals_the_summary() {
    let gw = gateway!();
    let (status, c) = post(
        &gw,
        &gw.key,
        COMPACT,
        json!({"model": "fake/m", "input": conversation(),
               "instructions": "Be terse.",
               "prompt_cache_key": "compact-test"}),
    )
    .await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["object"], "response.compaction");
    assert!(c["id"].as_str().unwrap().starts_with("resp_"));
    assert!(c["created_at"].as_i64().unwrap() > 1_700_000_000);
    let output = c["output"].as_array().unwrap();
    assert_eq!(output.len(), 3, "{c}");
    for (item, text) in output
        .iter()
        .zip(["Remember the code word: slate.", "Compress this conversation."])
    {
        assert_eq!(item["type"], "message");
        assert_eq!(item["role"], "user");
        assert_eq!(item["status"], "completed");
        assert!(item["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!(
            item["content"],
            json!([{"type": "input_text", "text": text}])
        );
    }
    assert_eq!(output[2]["type"], "compaction");
    assert!(output[2]["id"].as_str().unwrap().starts_with("cmp_"));
    let sealed = output[2]["encrypted_content"].as_str().unwrap();
    assert!(!sealed.contains("slate"), "the summary is readable: {sealed}");

    // The model was asked with the compaction prompt, over every turn.
    let asked = last_messages(&gw);
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(asked[0].0, "system");
    assert!(asked[0].1.starts_with("You compact conversations."));
    assert_eq!(asked[1].0, "user");
    for part in [
        "[instructions]: Be terse.",
        "[user]: Remember the code word: slate.",
        "[assistant]: OK.",
        "[user]: Compress this conversation.",
    ] {
        assert!(asked[1].1.contains(part), "{part} missing: {}", asked[1].1);
    }
    // Usage is the compaction call's (the fake counts words).
    let summary_words =
        format!("You said: {}", asked[1].1).split_whitespace().count();
    assert_eq!(c["usage"]["output_tokens"], summary_words as i64);
    assert!(c["usage"]["input_tokens"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn compaction_output_starts_a_new_chain_with_the_summary() {
    let gw = gateway!();
    let c = compact(&gw, &gw.key).await;
    // The fake's answer to the compaction call is the summary.
    let summary = format!("You said: {}", last_messages(&gw).pop().unwrap().1);
    let mut input = c["output"].as_array().unwrap().clone();
    input.push(json!({"role": "user", "content": "Continue: the code word?"}));
    let (status, r) = post(
        &gw,
        &gw.key,
        "/v1/responses",
        json!({"model": "fake/m", "input": input, "store": true}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["status"], "completed");
    let asked = last_messages(&gw);
    assert_eq!(asked.len(), 4, "{asked:?}");
    assert_eq!(
        asked[0],
        ("user".into(), "Remember the code word: slate.".into())
    );
    assert_eq!(asked[1], ("user".into(), "Compress this conversation.".into()));
    assert_eq!(asked[2].0, "system");
    assert!(asked[2].1.ends_with(&summary), "{:?}", asked[2]);
    assert!(asked[2].1.contains("slate"));
    assert_eq!(asked[3], ("user".into(), "Continue: the code word?".into()));

    // Stored sealed, as sent, and opened again for the next turn.
    let id = r["id"].as_str().unwrap();
    let items: Value = gw
        .get(&gw.key, &format!("/v1/responses/{id}/input_items?order=asc"))
        .await
        .json()
        .await
        .unwrap();
    let types: Vec<&str> = items["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["message", "message", "compaction", "message"]);
    assert_eq!(
        items["data"][2]["encrypted_content"],
        c["output"][2]["encrypted_content"]
    );
    let (status, next) = post(
        &gw,
        &gw.key,
        "/v1/responses",
        json!({"model": "fake/m", "input": "And then?",
               "previous_response_id": id}),
    )
    .await;
    assert_eq!(status, 200, "{next}");
    let asked = last_messages(&gw);
    assert!(
        asked.iter().any(|(role, t)| role == "system" && t.ends_with(&summary))
    );
}

#[tokio::test]
async fn altered_or_foreign_compaction_items_are_refused() {
    let gw = gateway!();
    let c = compact(&gw, &gw.key).await;
    let item = c["output"][2].clone();
    let before = gw.upstream.requests().len();

    let mut altered = item.clone();
    let text = altered["encrypted_content"].as_str().unwrap().to_string();
    let flipped = if text.ends_with('A') { 'B' } else { 'A' };
    altered["encrypted_content"] =
        json!(format!("{}{flipped}", &text[..text.len() - 1]));
    let other = gw.key_for_org("compact-other").await;
    for (key, item) in [(&gw.key, altered), (&other, item.clone())] {
        for path in ["/v1/responses", COUNT] {
            let (status, e) = post(
                &gw,
                key,
                path,
                json!({"model": "fake/m", "input": [item.clone()]}),
            )
            .await;
            assert_eq!(status, 400, "{path}: {e}");
            assert_eq!(e["error"]["code"], "invalid_encrypted_content");
            assert_eq!(e["error"]["param"], "input");
        }
    }
    // Refused before any upstream call.
    assert_eq!(gw.upstream.requests().len(), before);
}

#[tokio::test]
async fn every_server_on_the_database_opens_what_another_sealed() {
    let gw = gateway!();
    let c = compact(&gw, &gw.key).await;
    // A second server on the same database, as another replica would be.
    let file = file_config(&gw.upstream.base_url(), &Options::default());
    let twin = server::start(ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: gw.db.url.clone(),
        file,
        internal_key: None,
    })
    .await
    .expect("second server starts");
    let body = json!({"model": "fake/m", "input": [c["output"][2].clone()]});
    let rsp = http()
        .post(format!("http://{}/v1/responses", twin.addr))
        .bearer_auth(&gw.key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 200, "{}", rsp.text().await.unwrap());
    twin.shutdown().await;
}

#[tokio::test]
async fn a_configured_key_seals_and_the_stored_key_cannot_open_it() {
    let keyed = gateway!(Options {
        compaction_key_env: Some("MANIAC_TEST_COMPACTION_KEY".into()),
        ..Options::default()
    });
    let c = compact(&keyed, &keyed.key).await;
    let item = c["output"][2].clone();
    let (status, _) = post(
        &keyed,
        &keyed.key,
        "/v1/responses",
        json!({"model": "fake/m", "input": [item.clone()]}),
    )
    .await;
    assert_eq!(status, 200);
    // A gateway with its own stored key does not open it.
    let plain = gateway!();
    let (status, e) = post(
        &plain,
        &plain.key,
        "/v1/responses",
        json!({"model": "fake/m", "input": [item]}),
    )
    .await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["error"]["code"], "invalid_encrypted_content");
}

#[tokio::test]
async fn a_missing_compaction_key_variable_stops_startup_naming_it() {
    let Some(db) = TestDb::create().await else { return };
    let mut file = file_config("http://127.0.0.1:9/v1", &Options::default());
    file.compaction.key_env = Some("MANIAC_TEST_NO_SUCH_VARIABLE".into());
    let err = match server::start(ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: db.url.clone(),
        file,
        internal_key: None,
    })
    .await
    {
        Ok(_) => panic!("started without its compaction key"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("MANIAC_TEST_NO_SUCH_VARIABLE"), "{err}");
}

#[tokio::test]
async fn compaction_requests_are_validated_like_create() {
    let gw = gateway!();
    let cases = [
        (
            json!({"input": conversation()}),
            "model",
            "missing_required_parameter",
        ),
        (json!({"model": "fake/m"}), "input", "missing_required_parameter"),
        (
            json!({"model": "fake/m", "input": "x", "tools": []}),
            "tools",
            "unknown_parameter",
        ),
        (json!({"model": "nope", "input": "x"}), "model", "invalid_value"),
        (
            json!({"model": "fake/m", "previous_response_id": "resp_missing"}),
            "previous_response_id",
            "previous_response_not_found",
        ),
    ];
    for (body, param, code) in cases {
        let (status, e) = post(&gw, &gw.key, COMPACT, body.clone()).await;
        assert_eq!(status, 400, "{body}: {e}");
        assert_eq!(e["error"]["param"], param, "{body}: {e}");
        assert_eq!(e["error"]["code"], code, "{body}: {e}");
    }
    let rsp = http()
        .post(gw.url(COMPACT))
        .json(&json!({"model": "fake/m", "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 401);
}

#[tokio::test]
async fn compaction_of_a_stored_chain_summarizes_it() {
    let gw = gateway!();
    let first = gw
        .create(json!({"model": "fake/m", "input": "The launch is Tuesday."}))
        .await;
    let (status, c) = post(
        &gw,
        &gw.key,
        COMPACT,
        json!({"model": "fake/m", "previous_response_id": first["id"],
               "input": "Summarize please."}),
    )
    .await;
    assert_eq!(status, 200, "{c}");
    let prompt = last_messages(&gw).pop().unwrap().1;
    assert!(prompt.contains("[user]: The launch is Tuesday."), "{prompt}");
    assert!(prompt.contains("[assistant]: You said: The launch is Tuesday."));
    assert!(prompt.contains("[user]: Summarize please."));
}

#[tokio::test]
async fn input_tokens_are_counted_with_the_model_familys_tokenizer() {
    let gw = gateway!();
    let before = gw.upstream.requests().len();
    // o200k_base: "Hello, world!" is 4 tokens, "user" 1; 3 framing tokens
    // per message and 3 priming the reply.
    let (status, n) = post(
        &gw,
        &gw.key,
        COUNT,
        json!({"model": "fake/gpt-4o", "input": "Hello, world!"}),
    )
    .await;
    assert_eq!(status, 200, "{n}");
    assert_eq!(
        n,
        json!({"object": "response.input_tokens", "input_tokens": 11})
    );
    // Instructions add a developer message: "developer" 1, "Be brief." 3.
    let (_, with) = post(
        &gw,
        &gw.key,
        COUNT,
        json!({"model": "fake/gpt-4o", "input": "Hello, world!",
               "instructions": "Be brief."}),
    )
    .await;
    assert_eq!(with["input_tokens"], 11 + 3 + 1 + 3);
    // cl100k_base splits these scripts into more tokens than o200k_base.
    let long = "Привет! Как дела? नमस्ते, आप कैसे हैं? 日本語のテキストです。";
    let mut counts = Vec::new();
    for model in ["fake/gpt-4", "fake/gpt-4o"] {
        let body = json!({"model": model, "input": long});
        counts.push(
            post(&gw, &gw.key, COUNT, body).await.1["input_tokens"].clone(),
        );
    }
    assert!(counts[0].as_i64() > counts[1].as_i64(), "{counts:?}");
    // A chain counts too.
    let first = gw.create(json!({"model": "fake/m", "input": "one two"})).await;
    let (_, chained) = post(
        &gw,
        &gw.key,
        COUNT,
        json!({"model": "fake/gpt-4o", "input": "Hello, world!",
               "previous_response_id": first["id"]}),
    )
    .await;
    assert!(chained["input_tokens"].as_i64().unwrap() > 11 + 2 * 3);
    // Counting never calls the upstream.
    assert_eq!(gw.upstream.requests().len(), before + 1);
}

#[tokio::test]
async fn input_tokens_are_validated_like_create() {
    let gw = gateway!();
    let cases = [
        (json!({"input": "x"}), "model", "missing_required_parameter"),
        (
            json!({"model": "fake/m", "input": "x", "tools": [{"type": "function", "name": "f"}]}),
            "tools",
            "unsupported_parameter",
        ),
        (json!({"model": "fake/m", "nope": 1}), "nope", "unknown_parameter"),
        (
            json!({"model": "fake/m", "input": "x", "conversation": "conv_1"}),
            "conversation",
            "unsupported_parameter",
        ),
    ];
    for (body, param, code) in cases {
        let (status, e) = post(&gw, &gw.key, COUNT, body.clone()).await;
        assert_eq!(status, 400, "{body}: {e}");
        assert_eq!(e["error"]["param"], param, "{body}: {e}");
        assert_eq!(e["error"]["code"], code, "{body}: {e}");
    }
    // The same tools answer as create gives.
    let body = json!({"model": "fake/m", "input": "x", "tools": [{"type": "function", "name": "f"}]});
    let (_, created) = post(&gw, &gw.key, "/v1/responses", body.clone()).await;
    let (_, counted) = post(&gw, &gw.key, COUNT, body).await;
    assert_eq!(created, counted);
}

#[tokio::test]
async fn input_tokens_on_anthropic_are_anthropics_own_count() {
    let fake = FakeAnthropic::start(Some(TEST_KEY)).await;
    let cfg = ProviderConfig::Anthropic(anthropic::config(&fake));
    let gw = gateway!(Options {
        extra_providers: vec![("claude".into(), cfg)],
        ..Options::default()
    });
    let (status, n) = post(
        &gw,
        &gw.key,
        COUNT,
        json!({"model": "claude/claude-sonnet-test",
               "instructions": "four words of instructions",
               "input": [
                   {"role": "user", "content": "one two three"},
                   {"role": "assistant", "content": "five six"},
                   {"role": "user", "content": "seven"}]}),
    )
    .await;
    assert_eq!(status, 200, "{n}");
    // The fake counts the words of every text it was given: all of them
    // reached it.
    assert_eq!(n["input_tokens"], 4 + 3 + 2 + 1);
    let asked = fake.all_requests().pop().unwrap();
    assert_eq!(asked.route, "POST /v1/messages/count_tokens");
    assert_eq!(asked.body["model"], "claude-sonnet-test");
    assert_eq!(asked.header("x-api-key").as_deref(), Some(TEST_KEY));
    assert!(fake.messages_requests().is_empty());
}

#[tokio::test]
async fn unknown_names_under_a_response_are_method_not_allowed() {
    let gw = gateway!();
    let rsp = gw.post(&gw.key, "/v1/responses/resp_123", &json!({})).await;
    assert_eq!(rsp.status(), 405);
    assert_eq!(rsp.headers()["allow"], "GET, DELETE");
    let e: Value = rsp.json().await.unwrap();
    assert_eq!(e["error"]["code"], "method_not_allowed");
}
