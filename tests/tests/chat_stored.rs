//! End-to-end: stored chat completions (`store: true`), read, listed,
//! updated and deleted within the caller's organization only.

use maniac_tests::gateway;
use maniac_tests::harness::*;
use serde_json::{Value, json};

const CHAT: &str = "/v1/chat/completions";

async fn stored(gw: &Gateway, text: &str, model: &str, meta: Value) -> Value {
    let rsp = gw
        .post(&gw.key, CHAT, &json!({"model": model, "store": true, "metadata": meta,
            "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": text}]}))
        .await;
    assert_eq!(rsp.status(), 200);
    rsp.json().await.unwrap()
}

async fn get_json(gw: &Gateway, key: &str, path: &str) -> (u16, Value) {
    let rsp = gw.get(key, path).await;
    let status = rsp.status().as_u16();
    (status, rsp.json().await.unwrap())
}

#[tokio::test]
async fn stored_completion_reads_back_as_answered() {
    let gw = gateway!();
    let c = stored(&gw, "remember me", "echo/echo", json!({"team": "a"})).await;
    let id = c["id"].as_str().unwrap();
    assert_eq!(c["metadata"], json!({"team": "a"}));
    let (status, got) = get_json(&gw, &gw.key, &format!("{CHAT}/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got, c);
    let (status, msgs) =
        get_json(&gw, &gw.key, &format!("{CHAT}/{id}/messages")).await;
    assert_eq!(status, 200);
    assert_eq!(msgs["object"], "list");
    assert_eq!(msgs["data"][0]["id"], format!("{id}-0"));
    assert_eq!(msgs["data"][0]["role"], "system");
    assert_eq!(msgs["data"][1]["content"], "remember me");
    assert_eq!(msgs["has_more"], false);
    // Not stored unless asked.
    let rsp = gw.post(&gw.key, CHAT, &json!({"model": "echo/echo", "messages": [{"role": "user", "content": "x"}]})).await;
    let plain: Value = rsp.json().await.unwrap();
    let (status, e) = get_json(
        &gw,
        &gw.key,
        &format!("{CHAT}/{}", plain["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 404, "{e}");
    assert_eq!(e["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn streamed_stored_completion_is_kept_whole() {
    let gw = gateway!();
    let rsp = gw
        .post(
            &gw.key,
            CHAT,
            &json!({"model": "fake/m", "store": true, "stream": true,
        "messages": [{"role": "user", "content": "WORDS:12"}]}),
        )
        .await;
    let text = rsp.text().await.unwrap();
    let first: Value = serde_json::from_str(
        text.split("\n\n").next().unwrap().strip_prefix("data: ").unwrap(),
    )
    .unwrap();
    let id = first["id"].as_str().unwrap();
    let (status, got) = get_json(&gw, &gw.key, &format!("{CHAT}/{id}")).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["object"], "chat.completion");
    assert_eq!(
        got["choices"][0]["message"]["content"],
        "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11"
    );
    assert!(got["usage"]["total_tokens"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn list_pages_filters_and_orders() {
    let gw = gateway!();
    let mut ids = Vec::new();
    for i in 0..5 {
        let model = if i % 2 == 0 { "echo/echo" } else { "fake/m" };
        let meta = json!({"n": i.to_string(), "parity": if i % 2 == 0 { "even" } else { "odd" }});
        ids.push(
            stored(&gw, &format!("msg {i}"), model, meta).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // Pages of 2, oldest first, by cursor.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("{CHAT}?limit=2");
        if let Some(a) = &after {
            path.push_str(&format!("&after={a}"));
        }
        let (status, page) = get_json(&gw, &gw.key, &path).await;
        assert_eq!(status, 200, "{page}");
        for c in page["data"].as_array().unwrap() {
            seen.push(c["id"].as_str().unwrap().to_string());
        }
        if page["has_more"] == false {
            break;
        }
        after = page["last_id"].as_str().map(str::to_string);
    }
    assert_eq!(seen, ids);
    // A cursor naming no completion of the list: a 404 naming it.
    let (status, e) =
        get_json(&gw, &gw.key, &format!("{CHAT}?after=chatcmpl-nope")).await;
    assert_eq!(status, 404, "{e}");
    assert_eq!(e["error"]["param"], "after", "{e}");
    let (_, desc) =
        get_json(&gw, &gw.key, &format!("{CHAT}?order=desc&limit=100")).await;
    let desc: Vec<&str> = desc["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let mut rev: Vec<&str> = ids.iter().map(String::as_str).collect();
    rev.reverse();
    assert_eq!(desc, rev);
    let (_, odd) =
        get_json(&gw, &gw.key, &format!("{CHAT}?model=fake/m")).await;
    assert_eq!(odd["data"].as_array().unwrap().len(), 2);
    let (_, even) = get_json(
        &gw,
        &gw.key,
        &format!("{CHAT}?metadata[parity]=even&metadata[n]=2"),
    )
    .await;
    let even: Vec<&str> = even["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(even, [ids[2].as_str()]);
    let (status, _) = get_json(&gw, &gw.key, &format!("{CHAT}?limit=0")).await;
    assert_eq!(status, 400);
    let (status, _) =
        get_json(&gw, &gw.key, &format!("{CHAT}?limit=101")).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn update_replaces_metadata_and_delete_removes_everything() {
    let gw = gateway!();
    let c = stored(&gw, "x", "echo/echo", json!({"a": "1"})).await;
    let id = c["id"].as_str().unwrap();
    let rsp = gw
        .post(
            &gw.key,
            &format!("{CHAT}/{id}"),
            &json!({"metadata": {"b": "2"}}),
        )
        .await;
    assert_eq!(rsp.status(), 200);
    let updated: Value = rsp.json().await.unwrap();
    assert_eq!(updated["metadata"], json!({"b": "2"}));
    assert_eq!(updated["choices"], c["choices"]);
    let (_, got) = get_json(&gw, &gw.key, &format!("{CHAT}/{id}")).await;
    assert_eq!(got["metadata"], json!({"b": "2"}));
    let rsp = gw.delete(&gw.key, &format!("{CHAT}/{id}")).await;
    assert_eq!(rsp.status(), 200);
    let d: Value = rsp.json().await.unwrap();
    assert_eq!(
        d,
        json!({"id": id, "object": "chat.completion.deleted", "deleted": true})
    );
    for path in [format!("{CHAT}/{id}"), format!("{CHAT}/{id}/messages")] {
        let (status, _) = get_json(&gw, &gw.key, &path).await;
        assert_eq!(status, 404, "{path}");
    }
    let rsp = gw.delete(&gw.key, &format!("{CHAT}/{id}")).await;
    assert_eq!(rsp.status(), 404);
}

#[tokio::test]
async fn another_orgs_completion_is_404_everywhere() {
    let gw = gateway!();
    let c = stored(&gw, "mine", "echo/echo", json!({})).await;
    let id = c["id"].as_str().unwrap();
    let other = gw.key_for_org("elsewhere").await;
    for path in [format!("{CHAT}/{id}"), format!("{CHAT}/{id}/messages")] {
        let (status, e) = get_json(&gw, &other, &path).await;
        assert_eq!(status, 404, "{path}: {e}");
    }
    let rsp = gw
        .post(&other, &format!("{CHAT}/{id}"), &json!({"metadata": {"x": "y"}}))
        .await;
    assert_eq!(rsp.status(), 404);
    let rsp = gw.delete(&other, &format!("{CHAT}/{id}")).await;
    assert_eq!(rsp.status(), 404);
    let (_, list) = get_json(&gw, &other, CHAT).await;
    assert_eq!(list["data"], json!([]));
    // Still there for its owner, metadata untouched.
    let (status, got) = get_json(&gw, &gw.key, &format!("{CHAT}/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got["metadata"], json!({}));
}

#[tokio::test]
async fn messages_page_in_both_orders() {
    let gw = gateway!();
    let messages: Vec<Value> = (0..5)
        .map(|i| json!({"role": "user", "content": format!("m{i}")}))
        .collect();
    let rsp = gw
        .post(
            &gw.key,
            CHAT,
            &json!({"model": "echo/echo", "store": true, "messages": messages}),
        )
        .await;
    let c: Value = rsp.json().await.unwrap();
    let id = c["id"].as_str().unwrap();
    let (_, p1) =
        get_json(&gw, &gw.key, &format!("{CHAT}/{id}/messages?limit=2")).await;
    assert_eq!(p1["has_more"], true);
    let (_, p2) = get_json(
        &gw,
        &gw.key,
        &format!(
            "{CHAT}/{id}/messages?limit=2&after={}",
            p1["last_id"].as_str().unwrap()
        ),
    )
    .await;
    let contents: Vec<&str> = p1["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2["data"].as_array().unwrap())
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["m0", "m1", "m2", "m3"]);
    let (_, desc) =
        get_json(&gw, &gw.key, &format!("{CHAT}/{id}/messages?order=desc"))
            .await;
    assert_eq!(desc["data"][0]["content"], "m4");
    assert_eq!(desc["first_id"], format!("{id}-4"));
}
