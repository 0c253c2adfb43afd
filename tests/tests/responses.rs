//! End-to-end: the synchronous Responses API (JSON and SSE), storage and
//! chaining, org isolation, validation and upstream faults, over real HTTP
//! against a real gateway, a real database and a real fake upstream.

use std::time::Duration;

use maniac_tests::gateway;
use maniac_tests::harness::*;
use serde_json::{Value, json};

fn output_text(r: &Value) -> String {
    let mut s = String::new();
    for item in r["output"].as_array().into_iter().flatten() {
        for part in item["content"].as_array().into_iter().flatten() {
            if part["type"] == "output_text" {
                s.push_str(part["text"].as_str().unwrap_or(""));
            }
        }
    }
    s
}

#[tokio::test]
async fn echo_json_response_has_full_object() {
    let gw = gateway!();
    let r = gw
        .create(json!({"model": "echo/any", "input": "hello brave new world", "instructions": "be brief", "metadata": {"k": "v"}}))
        .await;
    assert_eq!(r["object"], "response");
    assert!(r["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(r["status"], "completed");
    assert_eq!(r["provider"], "echo");
    assert_eq!(r["model"], "echo/any");
    assert_eq!(r["instructions"], "be brief");
    assert_eq!(r["metadata"]["k"], "v");
    assert_eq!(r["store"], true);
    assert_eq!(r["background"], false);
    assert!(r["completed_at"].as_i64().is_some());
    assert_eq!(output_text(&r), "hello brave new world");
    let item = &r["output"][0];
    assert!(item["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(item["role"], "assistant");
    assert_eq!(item["status"], "completed");
    // 4 input words + 2 instruction words; 4 output words.
    assert_eq!(r["usage"]["input_tokens"], 6);
    assert_eq!(r["usage"]["output_tokens"], 4);
    assert_eq!(r["usage"]["total_tokens"], 10);
    assert_eq!(r["usage"]["input_tokens_details"]["cached_tokens"], 0);
    assert_eq!(r["usage"]["output_tokens_details"]["reasoning_tokens"], 0);
    for k in [
        "error",
        "incomplete_details",
        "previous_response_id",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "text",
        "temperature",
        "top_p",
        "truncation",
    ] {
        assert!(r.get(k).is_some(), "missing {k}");
    }
}

#[tokio::test]
async fn echo_max_output_tokens_gives_incomplete() {
    let gw = gateway!();
    let words: Vec<String> = (0..20).map(|i| format!("w{i}")).collect();
    let r = gw.create(json!({"model": "echo/x", "input": words.join(" "), "max_output_tokens": 16})).await;
    assert_eq!(r["status"], "incomplete");
    assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(r["usage"]["output_tokens"], 16);
    assert_eq!(r["output"][0]["status"], "incomplete");
}

#[tokio::test]
async fn upstream_json_response_translates_request() {
    let gw = gateway!();
    let r = gw
        .create(json!({
            "model": "fake/gpt-test",
            "instructions": "You are terse.",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "look"}, {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}]},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "a picture", "annotations": []}]},
                {"role": "user", "content": "describe it"}
            ],
            "temperature": 0.5,
            "top_p": 0.9,
            "presence_penalty": 0.5,
            "frequency_penalty": -0.25,
            "max_output_tokens": 100,
            "reasoning": {"effort": "low"}
        }))
        .await;
    assert_eq!(output_text(&r), "You said: describe it");
    assert_eq!(r["provider"], "fake");
    let reqs = gw.upstream.requests();
    assert_eq!(reqs.len(), 1);
    let body = &reqs[0].body;
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["stream"], false);
    assert_eq!(body["temperature"], 0.5);
    assert_eq!(body["top_p"], 0.9);
    assert_eq!(body["presence_penalty"], 0.5);
    assert_eq!(body["frequency_penalty"], -0.25);
    assert_eq!(r["presence_penalty"], 0.5);
    assert_eq!(r["frequency_penalty"], -0.25);
    assert_eq!(body["max_tokens"], 100);
    assert_eq!(body["reasoning_effort"], "low");
    let msgs = body["messages"].as_array().unwrap();
    assert_eq!(msgs[0], json!({"role": "system", "content": "You are terse."}));
    assert_eq!(msgs[1]["role"], "user");
    assert_eq!(msgs[1]["content"][0], json!({"type": "text", "text": "look"}));
    assert_eq!(
        msgs[1]["content"][1]["image_url"]["url"],
        "data:image/png;base64,AAAA"
    );
    assert_eq!(msgs[2], json!({"role": "assistant", "content": "a picture"}));
    assert_eq!(msgs[3], json!({"role": "user", "content": "describe it"}));
    // Usage comes from the upstream.
    assert!(r["usage"]["input_tokens"].as_i64().unwrap() > 0);
    assert_eq!(r["usage"]["output_tokens"], 4);
}

#[tokio::test]
async fn structured_output_is_forwarded_as_response_format() {
    let gw = gateway!();
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name", "age"], "additionalProperties": false});
    let r = gw
        .create(json!({"model": "fake/m", "input": "JSON: who", "text": {"format": {"type": "json_schema", "name": "person", "schema": schema, "strict": true}}}))
        .await;
    let parsed: Value = serde_json::from_str(&output_text(&r)).unwrap();
    assert_eq!(parsed["name"], "Ada");
    assert_eq!(r["text"]["format"]["type"], "json_schema");
    let body = &gw.upstream.requests()[0].body;
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["name"], "person");
    assert_eq!(body["response_format"]["json_schema"]["strict"], true);
    assert_eq!(body["response_format"]["json_schema"]["schema"], schema);
}

#[tokio::test]
async fn stream_emits_full_taxonomy_in_order() {
    let gw = gateway!();
    let rsp = gw.post(&gw.key.clone(), "/v1/responses", &json!({"model": "fake/m", "input": "one two three", "stream": true})).await;
    assert_eq!(rsp.status(), 200);
    assert!(
        rsp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = sse_events(rsp).await;
    let t = types(&events);
    // "You said: one two three" streams as 5 word chunks.
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    expected.extend(std::iter::repeat_n("response.output_text.delta", 5));
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(t, expected);
    assert_consecutive(&events, 0);
    for (name, v) in &events {
        assert_eq!(
            name,
            v["type"].as_str().unwrap(),
            "event: line matches type"
        );
    }
    let deltas: String = events
        .iter()
        .filter(|(_, v)| v["type"] == "response.output_text.delta")
        .map(|(_, v)| v["delta"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(deltas, "You said: one two three");
    assert_eq!(events[0].1["response"]["status"], "in_progress");
    assert_eq!(events[0].1["response"]["output"], json!([]));
    assert_eq!(events[2].1["item"]["content"], json!([]));
    assert_eq!(events[3].1["part"]["text"], "");
    let done = &events.last().unwrap().1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(output_text(done), "You said: one two three");
    assert_eq!(done["usage"]["output_tokens"], 5);
    assert_eq!(done["id"], events[0].1["response"]["id"]);
    // The upstream was asked to stream with usage.
    let body = &gw.upstream.requests()[0].body;
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
    // Stored: GET returns the same final object.
    let id = done["id"].as_str().unwrap();
    let got: Value = gw
        .get(&gw.key, &format!("/v1/responses/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(&got, done);
}

#[tokio::test]
async fn stream_include_obfuscation_false_omits_padding() {
    let gw = gateway!();
    let on = sse_events(
        gw.post(
            &gw.key,
            "/v1/responses",
            &json!({"model": "echo/m", "input": "a b c", "stream": true}),
        )
        .await,
    )
    .await;
    let off = sse_events(
        gw.post(&gw.key, "/v1/responses", &json!({"model": "echo/m", "input": "a b c", "stream": true, "stream_options": {"include_obfuscation": false}})).await,
    )
    .await;
    let delta = |evs: &[(String, Value)]| {
        evs.iter()
            .find(|(_, v)| v["type"] == "response.output_text.delta")
            .unwrap()
            .1
            .clone()
    };
    assert!(delta(&on)["obfuscation"].is_string());
    assert!(delta(&off).get("obfuscation").is_none());
}

#[tokio::test]
async fn stream_refusal_uses_refusal_events() {
    let gw = gateway!();
    let evs = sse_events(gw.post(&gw.key, "/v1/responses", &json!({"model": "fake/m", "input": "REFUSE please", "stream": true})).await).await;
    let t = types(&evs);
    assert!(t.contains(&"response.refusal.delta".to_string()), "{t:?}");
    assert!(t.contains(&"response.refusal.done".to_string()));
    let done = &evs.last().unwrap().1["response"];
    assert_eq!(done["output"][0]["content"][0]["type"], "refusal");
    assert_eq!(
        done["output"][0]["content"][0]["refusal"],
        "I can't help with that."
    );
}

#[tokio::test]
async fn stream_length_and_content_filter_end_incomplete() {
    let gw = gateway!();
    let evs = sse_events(gw.post(&gw.key, "/v1/responses", &json!({"model": "fake/m", "input": "WORDS:40", "stream": true, "max_output_tokens": 16})).await).await;
    let last = &evs.last().unwrap().1;
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
    let evs = sse_events(gw.post(&gw.key, "/v1/responses", &json!({"model": "fake/m", "input": "FAULT:filter x", "stream": true})).await).await;
    let last = &evs.last().unwrap().1;
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "content_filter"
    );
}

#[tokio::test]
async fn chained_turns_prepend_transcript_without_old_instructions() {
    let gw = gateway!();
    let first = gw.create(json!({"model": "fake/m", "input": "My name is Ada.", "instructions": "first rules"})).await;
    let second = gw
        .create(json!({"model": "fake/m", "input": "What's my name?", "previous_response_id": first["id"], "instructions": "second rules"}))
        .await;
    assert_eq!(second["previous_response_id"], first["id"]);
    let third = gw.create(json!({"model": "fake/m", "input": "And again?", "previous_response_id": second["id"], "store": false})).await;
    assert_eq!(third["store"], false);
    let reqs = gw.upstream.requests();
    let msgs = reqs[2].body["messages"].as_array().unwrap().clone();
    let roles_and_text: Vec<(String, String)> = msgs
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_string(),
                m["content"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        roles_and_text,
        vec![
            ("user".to_string(), "My name is Ada.".to_string()),
            ("assistant".to_string(), "You said: My name is Ada.".to_string()),
            ("user".to_string(), "What's my name?".to_string()),
            ("assistant".to_string(), "You said: What's my name?".to_string()),
            ("user".to_string(), "And again?".to_string()),
        ]
    );
    // Second turn: its own instructions only.
    let msgs2 = reqs[1].body["messages"].as_array().unwrap();
    assert_eq!(msgs2[0], json!({"role": "system", "content": "second rules"}));
    assert!(!reqs[1].body.to_string().contains("first rules"));
    // A store:false response cannot be chained or retrieved.
    let rsp = gw.post(&gw.key, "/v1/responses", &json!({"model": "fake/m", "input": "x", "previous_response_id": third["id"]})).await;
    assert_eq!(rsp.status(), 400);
    let e: Value = rsp.json().await.unwrap();
    assert_eq!(e["error"]["code"], "previous_response_not_found");
    assert_eq!(e["error"]["param"], "previous_response_id");
    assert_eq!(
        gw.get(
            &gw.key,
            &format!("/v1/responses/{}", third["id"].as_str().unwrap())
        )
        .await
        .status(),
        404
    );
}

#[tokio::test]
async fn delete_then_get_is_404_and_chain_breaks() {
    let gw = gateway!();
    let r = gw.create(json!({"model": "echo/m", "input": "keep me"})).await;
    let id = r["id"].as_str().unwrap();
    let rsp = gw.delete(&gw.key, &format!("/v1/responses/{id}")).await;
    assert_eq!(rsp.status(), 200);
    let body: Value = rsp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"id": id, "object": "response.deleted", "deleted": true})
    );
    let rsp = gw.get(&gw.key, &format!("/v1/responses/{id}")).await;
    assert_eq!(rsp.status(), 404);
    let e: Value = rsp.json().await.unwrap();
    assert_eq!(
        e["error"]["message"],
        format!("Response with id '{id}' not found.")
    );
    assert_eq!(
        gw.delete(&gw.key, &format!("/v1/responses/{id}")).await.status(),
        404
    );
    let rsp = gw.post(&gw.key, "/v1/responses", &json!({"model": "echo/m", "input": "x", "previous_response_id": id})).await;
    assert_eq!(rsp.status(), 400);
}

#[tokio::test]
async fn input_items_page_with_cursor_in_both_orders() {
    let gw = gateway!();
    let first = gw.create(json!({"model": "echo/m", "input": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]})).await;
    let second = gw
        .create(json!({"model": "echo/m", "input": [{"role": "user", "content": "c"}, {"role": "developer", "content": "d"}], "previous_response_id": first["id"]}))
        .await;
    let id = second["id"].as_str().unwrap();
    // Context of the second turn: a, b, (answer "b"), c, d.
    let all: Value = gw
        .get(
            &gw.key,
            &format!("/v1/responses/{id}/input_items?order=asc&limit=100"),
        )
        .await
        .json()
        .await
        .unwrap();
    let texts: Vec<String> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["content"][0]["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(texts, ["a", "b", "b", "c", "d"]);
    assert_eq!(all["object"], "list");
    assert_eq!(all["has_more"], false);
    for item in all["data"].as_array().unwrap() {
        assert!(item["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!(item["type"], "message");
    }
    // Default order is desc; page through two at a time.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let q = match &after {
            Some(a) => format!("?limit=2&after={a}"),
            None => "?limit=2".to_string(),
        };
        let page: Value = gw
            .get(&gw.key, &format!("/v1/responses/{id}/input_items{q}"))
            .await
            .json()
            .await
            .unwrap();
        let data = page["data"].as_array().unwrap();
        assert_eq!(page["first_id"], data[0]["id"]);
        assert_eq!(page["last_id"], data[data.len() - 1]["id"]);
        seen.extend(
            data.iter()
                .map(|i| i["content"][0]["text"].as_str().unwrap().to_string()),
        );
        if page["has_more"] == false {
            break;
        }
        after = page["last_id"].as_str().map(str::to_string);
    }
    assert_eq!(seen, ["d", "c", "b", "b", "a"]);
    let rsp = gw
        .get(&gw.key, &format!("/v1/responses/{id}/input_items?limit=0"))
        .await;
    assert_eq!(rsp.status(), 400);
    let rsp = gw
        .get(&gw.key, &format!("/v1/responses/{id}/input_items?order=sideways"))
        .await;
    assert_eq!(rsp.status(), 400);
    // A well-formed cursor naming no item of the response: a 404 naming it.
    let rsp = gw
        .get(&gw.key, &format!("/v1/responses/{id}/input_items?after=msg_nope"))
        .await;
    assert_eq!(rsp.status(), 404);
    let e: Value = rsp.json().await.unwrap();
    assert_eq!(e["error"]["param"], "after", "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("msg_nope"));
    // The SDKs send include[] repeatedly.
    let rsp = gw
        .get(
            &gw.key,
            &format!("/v1/responses/{id}/input_items?include[]=a&include[]=b"),
        )
        .await;
    assert_eq!(rsp.status(), 200);
}

#[tokio::test]
async fn other_orgs_ids_are_404_on_every_endpoint() {
    let gw = gateway!();
    let other = gw.key_for_org("other-org").await;
    let r = gw.create(json!({"model": "echo/m", "input": "secret"})).await;
    let id = r["id"].as_str().unwrap();
    for path in [
        format!("/v1/responses/{id}"),
        format!("/v1/responses/{id}/input_items"),
        format!("/v1/responses/{id}?stream=true"),
    ] {
        let rsp = gw.get(&other, &path).await;
        assert_eq!(rsp.status(), 404, "{path}");
        let e: Value = rsp.json().await.unwrap();
        assert_eq!(
            e["error"]["message"],
            format!("Response with id '{id}' not found.")
        );
    }
    assert_eq!(
        gw.delete(&other, &format!("/v1/responses/{id}")).await.status(),
        404
    );
    assert_eq!(
        gw.post(&other, &format!("/v1/responses/{id}/cancel"), &json!({}))
            .await
            .status(),
        404
    );
    let rsp = gw.post(&other, "/v1/responses", &json!({"model": "echo/m", "input": "x", "previous_response_id": id})).await;
    assert_eq!(rsp.status(), 400);
    // Still there for its owner.
    assert_eq!(
        gw.get(&gw.key, &format!("/v1/responses/{id}")).await.status(),
        200
    );
}

#[tokio::test]
async fn cancel_of_synchronous_response_is_400() {
    let gw = gateway!();
    let r = gw.create(json!({"model": "echo/m", "input": "x"})).await;
    let rsp = gw
        .post(
            &gw.key,
            &format!("/v1/responses/{}/cancel", r["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(rsp.status(), 400);
    let e: Value = rsp.json().await.unwrap();
    assert_eq!(e["error"]["message"], "Cannot cancel a synchronous response.");
}

#[tokio::test]
async fn streaming_a_synchronous_response_is_400_naming_stream() {
    let gw = gateway!();
    let r = gw.create(json!({"model": "echo/m", "input": "x"})).await;
    let rsp = gw
        .get(
            &gw.key,
            &format!("/v1/responses/{}?stream=true", r["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(rsp.status(), 400);
    let e: Value = rsp.json().await.unwrap();
    assert_eq!(e["error"]["param"], "stream");
}

async fn expect_error(
    gw: &Gateway,
    body: Value,
    status: u16,
    param: Option<&str>,
    code: Option<&str>,
) -> Value {
    let rsp = gw.post(&gw.key, "/v1/responses", &body).await;
    assert_eq!(rsp.status().as_u16(), status, "body {body}");
    let e: Value = rsp.json().await.unwrap();
    let err = &e["error"];
    for k in ["message", "type", "param", "code"] {
        assert!(err.get(k).is_some(), "error lacks {k}: {e}");
    }
    assert_eq!(err["param"].as_str(), param, "{e}");
    if let Some(code) = code {
        assert_eq!(err["code"], code, "{e}");
    }
    assert!(!err["message"].as_str().unwrap().is_empty());
    e
}

#[tokio::test]
async fn each_validation_error_is_a_400_naming_param() {
    let gw = gateway!();
    let m = "echo/m";
    expect_error(
        &gw,
        json!({"input": "x"}),
        400,
        Some("model"),
        Some("missing_required_parameter"),
    )
    .await;
    expect_error(
        &gw,
        json!({"model": m}),
        400,
        Some("input"),
        Some("missing_required_parameter"),
    )
    .await;
    expect_error(
        &gw,
        json!({"model": "nomodel", "input": "x"}),
        400,
        Some("model"),
        None,
    )
    .await;
    expect_error(
        &gw,
        json!({"model": "ghost/m", "input": "x"}),
        400,
        Some("model"),
        Some("model_not_found"),
    )
    .await;
    expect_error(
        &gw,
        json!({"model": m, "input": "x", "foo": 1}),
        400,
        Some("foo"),
        Some("unknown_parameter"),
    )
    .await;
    expect_error(
        &gw,
        json!({"model": m, "input": "x", "temperature": 2.5}),
        400,
        Some("temperature"),
        Some("invalid_value"),
    )
    .await;
    expect_error(
        &gw,
        json!({"model": m, "input": "x", "temperature": -0.1}),
        400,
        Some("temperature"),
        None,
    )
    .await;
    expect_error(
        &gw,
        json!({"model": m, "input": "x", "top_p": 1.5}),
        400,
        Some("top_p"),
        None,
    )
    .await;
    expect_error(
        &gw,
        json!({"model": m, "input": "x", "presence_penalty": 2.5}),
        400,
        Some("presence_penalty"),
        None,
    )
    .await;
    expect_error(
        &gw,
        json!({"model": m, "input": "x", "frequency_penalty": -3}),
        400,
        Some("frequency_penalty"),
        None,
    )
    .await;
    expect_error(
        &gw,
        json!({"model": m, "input": "x", "top_logprobs": 21}),
        400,
        Some("top_logprobs"),
        None,
    )
    .await;
    expect_error(
        &gw,
        json!({"model": m, "input": "x", "max_output_tokens": 15}),
        400,
        Some("max_output_tokens"),
        None,
    )
    .await;
    let many: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
    expect_error(
        &gw,
        json!({"model": m, "input": "x", "metadata": many}),
        400,
        Some("metadata"),
        None,
    )
    .await;
    expect_error(
        &gw,
        json!({"model": m, "input": "x", "metadata": {"k".repeat(65): "v"}}),
        400,
        Some("metadata"),
        None,
    )
    .await;
    expect_error(
        &gw,
        json!({"model": m, "input": "x", "metadata": {"k": "v".repeat(513)}}),
        400,
        Some("metadata"),
        None,
    )
    .await;
    let e = expect_error(&gw, json!({"model": m, "input": "x", "tools": [{"type": "function", "name": "f"}]}), 400, Some("tools"), None).await;
    assert!(e["error"]["message"].as_str().unwrap().contains("remove `tools`"));
    expect_error(
        &gw,
        json!({"model": m, "input": "x", "conversation": "conv_1"}),
        400,
        Some("conversation"),
        None,
    )
    .await;
    expect_error(
        &gw,
        json!({"model": m, "input": "x", "prompt": {"id": "p"}}),
        400,
        Some("prompt"),
        None,
    )
    .await;
    expect_error(
        &gw,
        json!({"model": m, "input": "x", "background": true, "store": false}),
        400,
        Some("store"),
        None,
    )
    .await;
    expect_error(
        &gw,
        json!({"model": m, "input": [{"role": "wizard", "content": "x"}]}),
        400,
        Some("input"),
        None,
    )
    .await;
    expect_error(&gw, json!({"model": m, "input": "x", "text": {"format": {"type": "json_schema", "name": "bad name!", "schema": {}}}}), 400, Some("text.format.name"), None).await;
    expect_error(&gw, json!({"model": m, "input": "x", "stream_options": {"include_obfuscation": false}}), 400, Some("stream_options"), None).await;
    // Empty tools and the Maniac extensions are accepted.
    let r = gw.create(json!({"model": m, "input": "x", "tools": [], "tags": ["a", "b"], "trace": {"trace_id": "t1"}})).await;
    assert_eq!(r["tags"], json!(["a", "b"]));
    assert_eq!(r["trace"]["trace_id"], "t1");
    let got: Value = gw
        .get(&gw.key, &format!("/v1/responses/{}", r["id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["tags"], json!(["a", "b"]));
}

#[tokio::test]
async fn malformed_bodies_get_openai_shaped_errors() {
    let gw = gateway!();
    let client = http();
    let send = |body: Vec<u8>, ct: &'static str| {
        client
            .post(gw.url("/v1/responses"))
            .bearer_auth(&gw.key)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    for (body, status) in [
        (b"{not json".to_vec(), 400),
        (b"[1,2]".to_vec(), 400),
        (b"".to_vec(), 400),
        (b"{\"model\": 5}".to_vec(), 400),
    ] {
        let rsp = send(body, "application/json").await.unwrap();
        assert_eq!(rsp.status().as_u16(), status);
        assert!(rsp.headers().contains_key("x-request-id"));
        let e: Value = rsp.json().await.unwrap();
        assert_eq!(e["error"]["type"], "invalid_request_error", "{e}");
    }
    let rsp = send(b"model=x".to_vec(), "application/x-www-form-urlencoded")
        .await
        .unwrap();
    assert_eq!(rsp.status(), 415);
    let e: Value = rsp.json().await.unwrap();
    assert!(
        e["error"]["message"].as_str().unwrap().contains("application/json")
    );
    // 32 MiB is the limit.
    let big = format!(
        "{{\"model\":\"echo/m\",\"input\":\"{}\"}}",
        "a".repeat(33 * 1024 * 1024)
    );
    let rsp = send(big.into_bytes(), "application/json").await.unwrap();
    assert_eq!(rsp.status(), 413);
    let e: Value = rsp.json().await.unwrap();
    assert_eq!(e["error"]["code"], "request_too_large");
    // Just under the limit is fine (the gateway echoes it).
    let ok = format!(
        "{{\"model\":\"echo/m\",\"input\":\"{}\"}}",
        "b ".repeat(1024 * 1024)
    );
    let rsp = send(ok.into_bytes(), "application/json").await.unwrap();
    assert_eq!(rsp.status(), 200);
    // Bad query strings.
    let rsp = gw.get(&gw.key, "/v1/responses/resp_x?stream=maybe").await;
    assert_eq!(rsp.status(), 400);
    let e: Value = rsp.json().await.unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn auth_missing_wrong_and_revoked_keys_are_401() {
    let gw = gateway!();
    let rsp = http()
        .post(gw.url("/v1/responses"))
        .json(&json!({"model": "echo/m", "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 401);
    let e: Value = rsp.json().await.unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("didn't provide an API key")
    );
    let rsp = gw
        .post(
            "sk-mn-wrong",
            "/v1/responses",
            &json!({"model": "echo/m", "input": "x"}),
        )
        .await;
    assert_eq!(rsp.status(), 401);
    let e: Value = rsp.json().await.unwrap();
    assert_eq!(e["error"]["code"], "invalid_api_key");
    assert!(!e.to_string().contains("sk-mn-wrong"), "never echo keys");
    // Revocation takes effect within seconds.
    let key = maniac_server::auth::generate();
    gw.store.create_key("rev-org", None, &key.key_id, &key.hash).await.unwrap();
    let ok = gw
        .post(
            &key.secret,
            "/v1/responses",
            &json!({"model": "echo/m", "input": "x"}),
        )
        .await;
    assert_eq!(ok.status(), 200);
    assert!(gw.store.revoke_key(&key.key_id).await.unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let rsp = gw
            .post(
                &key.secret,
                "/v1/responses",
                &json!({"model": "echo/m", "input": "x"}),
            )
            .await;
        if rsp.status() == 401 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "revoked key still works"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn internal_key_acts_for_the_named_org() {
    let gw = gateway!(Options {
        internal_key: Some("internal-secret-123".into()),
        ..Options::default()
    });
    let r = gw.create(json!({"model": "echo/m", "input": "mine"})).await;
    let id = r["id"].as_str().unwrap();
    let client = http();
    let rsp = client
        .get(gw.url(&format!("/v1/responses/{id}")))
        .bearer_auth("internal-secret-123")
        .header("Maniac-Organization", "default")
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 200);
    let rsp = client
        .get(gw.url(&format!("/v1/responses/{id}")))
        .bearer_auth("internal-secret-123")
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 400);
    gw.key_for_org("elsewhere").await;
    let rsp = client
        .get(gw.url(&format!("/v1/responses/{id}")))
        .bearer_auth("internal-secret-123")
        .header("Maniac-Organization", "elsewhere")
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 404);
}

#[tokio::test]
async fn upstream_errors_before_first_event_are_json_errors() {
    let gw =
        gateway!(Options { request_timeout_secs: 1, ..Options::default() });
    for stream in [false, true] {
        let cases = [
            ("FAULT:500", 502, None),
            ("FAULT:429", 429, Some("7")),
            ("FAULT:400", 400, None),
            ("FAULT:401", 502, None),
            ("FAULT:hang", 504, None),
        ];
        for (marker, status, retry_after) in cases {
            let rsp = gw.post(&gw.key, "/v1/responses", &json!({"model": "fake/m", "input": marker, "stream": stream})).await;
            assert_eq!(
                rsp.status().as_u16(),
                status,
                "{marker} stream={stream}"
            );
            assert_eq!(
                rsp.headers().get("retry-after").map(|v| v.to_str().unwrap()),
                retry_after,
                "{marker}"
            );
            assert!(
                rsp.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/json")
            );
            let e: Value = rsp.json().await.unwrap();
            assert!(
                e["error"]["message"].as_str().unwrap().contains("upstream"),
                "{e}"
            );
        }
    }
    // Non-streaming malformed answer.
    let rsp = gw
        .post(
            &gw.key,
            "/v1/responses",
            &json!({"model": "fake/m", "input": "FAULT:malformed"}),
        )
        .await;
    assert_eq!(rsp.status(), 502);
}

#[tokio::test]
async fn upstream_failure_mid_stream_ends_with_error_event_and_failed_response()
{
    let gw = gateway!();
    for marker in ["FAULT:reset", "FAULT:malformed"] {
        let rsp = gw.post(&gw.key, "/v1/responses", &json!({"model": "fake/m", "input": format!("{marker} a b c d e f"), "stream": true})).await;
        assert_eq!(rsp.status(), 200);
        let evs = sse_events(rsp).await;
        assert_consecutive(&evs, 0);
        let (name, last) = evs.last().unwrap();
        assert_eq!(name, "error", "{marker}: {:?}", types(&evs));
        assert_eq!(last["code"], "server_error");
        assert_eq!(last["error"]["code"], "server_error");
        assert_eq!(last["error"]["message"], last["message"]);
        assert_eq!(
            types(&evs).iter().filter(|t| t.as_str() == "error").count(),
            1
        );
        assert!(
            types(&evs).contains(&"response.output_text.delta".to_string())
        );
        let id = evs[0].1["response"]["id"].as_str().unwrap();
        let stored: Value = gw
            .get(&gw.key, &format!("/v1/responses/{id}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(stored["status"], "failed", "{marker}");
        assert_eq!(stored["error"]["code"], "server_error");
    }
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_call() {
    let gw = gateway!();
    let mut rsp = gw.post(&gw.key, "/v1/responses", &json!({"model": "fake/m", "input": "SLOW:200 WORDS:100", "stream": true})).await;
    let first = rsp.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("response.created"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while gw.upstream.open_streams() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "upstream stream never opened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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

#[tokio::test]
async fn every_answer_carries_x_request_id() {
    let gw = gateway!();
    for rsp in [
        gw.post(
            &gw.key,
            "/v1/responses",
            &json!({"model": "echo/m", "input": "x"}),
        )
        .await,
        gw.get(&gw.key, "/v1/responses/resp_missing").await,
        gw.post("bad", "/v1/responses", &json!({})).await,
    ] {
        assert!(rsp.headers().contains_key("x-request-id"));
    }
}
