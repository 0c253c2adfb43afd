//! End-to-end: reasoning output from OpenAI-compatible upstreams that
//! stream `reasoning_content` (DeepSeek, vLLM, llama.cpp) or `reasoning`
//! (OpenRouter), over real HTTP against the fake upstream: JSON, SSE,
//! stored and chained, background replay, and upstreams that send none.

use std::time::Duration;

use maniac_tests::gateway;
use maniac_tests::harness::*;
use maniac_tests::upstream::REASONING;
use serde_json::{Value, json};

fn reasoning_text(item: &Value) -> String {
    item["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["text"].as_str())
        .collect()
}

#[tokio::test]
async fn reasoning_content_becomes_a_reasoning_item_before_the_message() {
    let gw = gateway!();
    for marker in ["THINK", "THINK:openrouter"] {
        let r = gw
            .create(json!({"model": "fake/m", "input": format!("hi {marker}")}))
            .await;
        assert_eq!(r["status"], "completed", "{r}");
        let out = r["output"].as_array().unwrap();
        assert_eq!(out.len(), 2, "{r}");
        assert_eq!(out[0]["type"], "reasoning");
        assert!(out[0]["id"].as_str().unwrap().starts_with("rs_"));
        assert_eq!(out[0]["summary"], json!([]));
        assert_eq!(out[0]["status"], "completed");
        assert_eq!(reasoning_text(&out[0]), REASONING);
        assert_eq!(out[1]["type"], "message");
        assert_eq!(
            out[1]["content"][0]["text"],
            format!("You said: hi {marker}")
        );
        // "Thinking about it." is three words.
        let usage = &r["usage"];
        assert_eq!(usage["output_tokens_details"]["reasoning_tokens"], 3);
        assert_eq!(usage["output_tokens"], 4 + 3);
    }
}

#[tokio::test]
async fn upstreams_without_reasoning_answer_exactly_one_message() {
    let gw = gateway!();
    let r = gw.create(json!({"model": "fake/m", "input": "plain"})).await;
    let out = r["output"].as_array().unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["type"], "message");
    assert_eq!(r["usage"]["output_tokens_details"]["reasoning_tokens"], 0);
}

#[tokio::test]
async fn streamed_reasoning_has_its_events_and_output_index() {
    let gw = gateway!();
    let rsp = gw
        .post(
            &gw.key,
            "/v1/responses",
            &json!({"model": "fake/m", "input": "go THINK", "stream": true}),
        )
        .await;
    assert_eq!(rsp.status(), 200);
    let events = sse_events(rsp).await;
    assert_consecutive(&events, 0);
    let t = types(&events);
    let pos = |name: &str| t.iter().position(|x| x == name).unwrap();
    assert!(
        pos("response.reasoning_text.delta")
            < pos("response.output_text.delta")
    );
    assert!(
        pos("response.reasoning_text.done") < pos("response.output_text.delta")
    );
    let deltas: String = events
        .iter()
        .filter(|(k, _)| k == "response.reasoning_text.delta")
        .map(|(_, v)| {
            assert_eq!(v["output_index"], 0);
            assert_eq!(v["content_index"], 0);
            v["delta"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(deltas, REASONING);
    for (k, v) in &events {
        if k == "response.output_text.delta" {
            assert_eq!(v["output_index"], 1, "the message is item 1");
        }
    }
    let added: Vec<&Value> = events
        .iter()
        .filter(|(k, _)| k == "response.output_item.added")
        .map(|(_, v)| &v["item"])
        .collect();
    assert_eq!(added[0]["type"], "reasoning");
    assert_eq!(added[0]["summary"], json!([]));
    let (last, done) = events.last().unwrap();
    assert_eq!(last, "response.completed");
    assert_eq!(done["response"]["output"][0]["type"], "reasoning");
}

#[tokio::test]
async fn stored_reasoning_is_listed_and_left_out_of_the_next_turn_upstream() {
    let gw = gateway!();
    let first = gw
        .create(
            json!({"model": "fake/m", "input": "first THINK", "store": true}),
        )
        .await;
    let id = first["id"].as_str().unwrap();
    let got: Value = gw
        .get(&gw.key, &format!("/v1/responses/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["output"], first["output"], "stored as answered");
    gw.upstream.clear();
    let second = gw
        .create(json!({"model": "fake/m", "input": "second", "previous_response_id": id}))
        .await;
    assert_eq!(second["status"], "completed");
    let sent = &gw.upstream.requests()[0].body;
    let msgs = sent["messages"].as_array().unwrap();
    let roles: Vec<&str> =
        msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user"], "{sent}");
    assert!(!sent.to_string().contains(REASONING), "no reasoning upstream");
    let sid = second["id"].as_str().unwrap();
    let items: Value = gw
        .get(&gw.key, &format!("/v1/responses/{sid}/input_items?order=asc"))
        .await
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = items["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["message", "reasoning", "message", "message"]);
    assert_eq!(reasoning_text(&items["data"][1]), REASONING);
}

#[tokio::test]
async fn reasoning_items_sent_back_as_input_are_accepted() {
    let gw = gateway!();
    let first = gw.create(json!({"model": "fake/m", "input": "a THINK"})).await;
    let mut input: Vec<Value> = first["output"].as_array().unwrap().clone();
    input.push(json!({"role": "user", "content": "and then?"}));
    let r = gw.create(json!({"model": "fake/m", "input": input})).await;
    assert_eq!(r["status"], "completed", "{r}");
}

#[tokio::test]
async fn background_reasoning_replays_from_the_log_identically() {
    let gw = gateway!();
    let rsp = gw
        .post(
            &gw.key,
            "/v1/responses",
            &json!({"model": "fake/m", "input": "bg THINK", "background": true,
                    "stream": true, "stream_options": {"include_obfuscation": false}}),
        )
        .await;
    let live = sse_events(rsp).await;
    let id = live[0].1["response"]["id"].as_str().unwrap().to_string();
    let done = wait_terminal(&gw, &gw.key, &id, Duration::from_secs(10)).await;
    assert_eq!(done["output"][0]["type"], "reasoning");
    let replay = sse_events(
        gw.get(&gw.key, &format!("/v1/responses/{id}?stream=true")).await,
    )
    .await;
    assert_eq!(types(&replay), types(&live));
    assert!(types(&replay).contains(&"response.reasoning_text.delta".into()));
    assert_eq!(replay.last().unwrap().1, live.last().unwrap().1);
}
