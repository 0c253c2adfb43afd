//! Organization isolation, as one table: every operation that takes an id
//! (responses, input items, cancel, stream resume, chaining, item
//! references, stored chat completions and their messages, and the
//! compaction items) answered for another organization's id is a 404 (a
//! 400 `invalid_encrypted_content` for a sealed item), never its data; and
//! the owner still sees it afterwards, unchanged.

use std::time::Duration;

use maniac_tests::gateway;
use maniac_tests::harness::*;
use reqwest::Method;
use serde_json::{Value, json};

/// What org A made that org B will try to reach.
struct Made {
    response: String,
    background: String,
    message_item: String,
    completion: String,
    compaction: Value,
}

async fn make(gw: &Gateway) -> Made {
    let response = gw
        .create(
            json!({"model": "fake/m", "input": "secret-of-a", "store": true}),
        )
        .await;
    let rsp = gw
        .post(
            &gw.key,
            "/v1/responses",
            &json!({"model": "fake/m", "input": "SLOW:50 WORDS:40",
                    "background": true, "store": true}),
        )
        .await;
    let background: Value = rsp.json().await.unwrap();
    let id = response["id"].as_str().unwrap().to_string();
    let items: Value = gw
        .get(&gw.key, &format!("/v1/responses/{id}/input_items"))
        .await
        .json()
        .await
        .unwrap();
    let rsp = gw
        .post(
            &gw.key,
            "/v1/chat/completions",
            &json!({"model": "fake/m", "store": true,
                    "messages": [{"role": "user", "content": "secret-of-a"}]}),
        )
        .await;
    let completion: Value = rsp.json().await.unwrap();
    let rsp = gw
        .post(
            &gw.key,
            "/v1/responses/compact",
            &json!({"model": "fake/m", "input": "secret-of-a"}),
        )
        .await;
    let compacted: Value = rsp.json().await.unwrap();
    Made {
        response: id,
        background: background["id"].as_str().unwrap().to_string(),
        message_item: items["data"][0]["id"].as_str().unwrap().to_string(),
        completion: completion["id"].as_str().unwrap().to_string(),
        compaction: compacted["output"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone(),
    }
}

#[tokio::test]
async fn another_orgs_ids_are_not_found_and_never_leak() {
    let gw = gateway!();
    let made = make(&gw).await;
    let other = gw.key_for_org("isolation-other").await;
    let (r, bg, item, c) = (
        &made.response,
        &made.background,
        &made.message_item,
        &made.completion,
    );
    // (method, path, body, expected status, what it is)
    let table: Vec<(Method, String, Option<Value>, u16, &str)> = vec![
        (Method::GET, format!("/v1/responses/{r}"), None, 404, "view"),
        (
            Method::GET,
            format!("/v1/responses/{r}/input_items"),
            None,
            404,
            "input items",
        ),
        (
            Method::GET,
            format!("/v1/responses/{bg}?stream=true"),
            None,
            404,
            "stream resume",
        ),
        (
            Method::GET,
            format!("/v1/responses/{bg}?stream=true&starting_after=0"),
            None,
            404,
            "resume after",
        ),
        (
            Method::POST,
            format!("/v1/responses/{bg}/cancel"),
            None,
            404,
            "cancel",
        ),
        (Method::DELETE, format!("/v1/responses/{r}"), None, 404, "delete"),
        (
            Method::POST,
            "/v1/responses".into(),
            Some(
                json!({"model": "fake/m", "input": "x", "previous_response_id": r}),
            ),
            400,
            "chain",
        ),
        (
            Method::POST,
            "/v1/responses".into(),
            Some(json!({"model": "fake/m",
                        "input": [{"type": "item_reference", "id": item}]})),
            404,
            "item reference",
        ),
        (
            Method::POST,
            "/v1/responses/compact".into(),
            Some(json!({"model": "fake/m", "previous_response_id": r})),
            400,
            "compact a chain",
        ),
        (
            Method::POST,
            "/v1/responses/input_tokens".into(),
            Some(json!({"model": "fake/m", "previous_response_id": r})),
            400,
            "count a chain",
        ),
        (
            Method::POST,
            "/v1/responses".into(),
            Some(
                json!({"model": "fake/m", "input": [made.compaction.clone()]}),
            ),
            400,
            "compaction item",
        ),
        (
            Method::GET,
            format!("/v1/chat/completions/{c}"),
            None,
            404,
            "chat view",
        ),
        (
            Method::GET,
            format!("/v1/chat/completions/{c}/messages"),
            None,
            404,
            "chat messages",
        ),
        (
            Method::POST,
            format!("/v1/chat/completions/{c}"),
            Some(json!({"metadata": {"k": "v"}})),
            404,
            "chat update",
        ),
        (
            Method::DELETE,
            format!("/v1/chat/completions/{c}"),
            None,
            404,
            "chat delete",
        ),
    ];
    let before = gw.upstream.requests().len();
    let mut rows = Vec::new();
    for (method, path, body, want, what) in table {
        let mut rb =
            http().request(method.clone(), gw.url(&path)).bearer_auth(&other);
        if let Some(b) = &body {
            rb = rb.json(b);
        }
        let rsp = rb.send().await.unwrap();
        let status = rsp.status().as_u16();
        let text = rsp.text().await.unwrap();
        rows.push(format!("{what:<16} {method:<6} {status}"));
        assert_eq!(status, want, "{what}: {method} {path}: {text}");
        assert!(!text.contains("secret-of-a"), "{what} leaked: {text}");
        let e: Value = serde_json::from_str(&text).expect("an error object");
        assert!(e["error"]["message"].is_string(), "{what}: {text}");
        if what == "compaction item" {
            assert_eq!(e["error"]["code"], "invalid_encrypted_content");
        }
        if what == "chain" {
            assert_eq!(e["error"]["code"], "previous_response_not_found");
        }
    }
    println!("{}", rows.join("\n"));
    // Nothing reached the upstream for B.
    assert_eq!(gw.upstream.requests().len(), before);
    // A still has everything, unchanged.
    let view: Value = gw
        .get(&gw.key, &format!("/v1/responses/{r}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["id"], r.as_str());
    let done = wait_terminal(&gw, &gw.key, bg, Duration::from_secs(30)).await;
    assert_eq!(
        done["status"], "completed",
        "B's cancel must not reach A's run"
    );
    let chat: Value = gw
        .get(&gw.key, &format!("/v1/chat/completions/{c}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(chat["metadata"], json!({}), "B's update must not apply");
}
