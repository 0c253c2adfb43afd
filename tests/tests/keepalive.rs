//! SSE keep-alives over real HTTP: while the upstream pauses mid-stream
//! (released by the test, not by a timer) every kind of stream — create,
//! resume of a background run, chat completions — sends `: keep-alive`
//! after `[streaming] keepalive_secs` of silence, then completes normally.

use std::time::Duration;

use maniac_tests::gateway;
use maniac_tests::harness::{Gateway, Options, parse_sse, types};
use serde_json::{Value, json};

const KEEPALIVE: &str = ": keep-alive\n\n";

fn options() -> Options {
    Options { sse_keepalive_secs: Some(1), ..Options::default() }
}

/// Reads `rsp` until a keep-alive comment arrived, then releases the
/// upstream's pause and reads the rest; returns the whole text.
async fn read_through_pause(
    gw: &Gateway,
    mut rsp: reqwest::Response,
) -> String {
    assert_eq!(rsp.status(), 200);
    let mut text = String::new();
    let within = Duration::from_secs(20);
    while !text.contains(KEEPALIVE) {
        let chunk = tokio::time::timeout(within, rsp.chunk())
            .await
            .expect("a keep-alive within 20 s")
            .expect("body")
            .unwrap_or_else(|| {
                panic!("stream ended before a keep-alive:\n{text}")
            });
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let before = text.split(KEEPALIVE).next().unwrap_or_default().to_string();
    assert!(
        !parse_sse(&before).is_empty(),
        "events came before the pause:\n{text}"
    );
    gw.upstream.release_pauses(1);
    while let Some(chunk) = rsp.chunk().await.expect("body") {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

#[tokio::test]
async fn a_paused_response_stream_gets_keep_alives_then_completes() {
    let gw = gateway!(options());
    let rsp = gw
        .post(
            &gw.key,
            "/v1/responses",
            &json!({"model": "fake/m", "input": "PAUSE a b c", "stream": true}),
        )
        .await;
    let text = read_through_pause(&gw, rsp).await;
    let events = parse_sse(&text);
    let kinds = types(&events);
    assert_eq!(kinds.first().map(String::as_str), Some("response.created"));
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("response.completed"),
        "{kinds:?}"
    );
    let done = &events.last().unwrap().1["response"];
    assert_eq!(
        done["output"][0]["content"][0]["text"],
        "You said: PAUSE a b c"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_resumed_background_stream_gets_keep_alives_then_completes() {
    let gw = gateway!(options());
    let queued = gw
        .create(json!({"model": "fake/m", "input": "PAUSE x y", "background": true}))
        .await;
    let id = queued["id"].as_str().unwrap();
    let rsp = gw.get(&gw.key, &format!("/v1/responses/{id}?stream=true")).await;
    let text = read_through_pause(&gw, rsp).await;
    let kinds = types(&parse_sse(&text));
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("response.completed"),
        "{kinds:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_paused_chat_stream_gets_keep_alives_then_ends_with_done() {
    let gw = gateway!(options());
    let rsp = gw
        .post(
            &gw.key,
            "/v1/chat/completions",
            &json!({"model": "fake/m", "stream": true,
                    "messages": [{"role": "user", "content": "PAUSE hi there"}]}),
        )
        .await;
    let text = read_through_pause(&gw, rsp).await;
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let content: String = text
        .split("\n\n")
        .filter_map(|b| b.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<Value>(d).expect("chunk JSON"))
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"].as_str().map(str::to_string)
        })
        .collect();
    assert_eq!(content, "You said: PAUSE hi there");
    gw.stop().await;
}
