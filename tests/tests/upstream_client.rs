//! The gateway's upstream HTTP client, seen from outside: HTTPS with a
//! private CA, keep-alive reuse, and connections the upstream closed.

use std::time::Duration;

use maniac_tests::gateway;
use maniac_tests::harness::{Options, sse_events, types};
use maniac_tests::upstream::FakeUpstream;
use serde_json::{Value, json};

fn output_text(r: &Value) -> String {
    r["output"][0]["content"][0]["text"].as_str().unwrap_or("").to_string()
}

#[tokio::test]
async fn https_upstream_behind_a_private_ca() {
    let gw = gateway!(Options { upstream_tls: true, ..Default::default() });
    assert!(gw.upstream.base_url().starts_with("https://localhost:"));

    let r = gw.create(json!({"model": "fake/m", "input": "over tls"})).await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(output_text(&r), "You said: over tls");

    let rsp = gw
        .post(
            &gw.key,
            "/v1/responses",
            &json!({"model": "fake/m", "input": "streamed tls", "stream": true}),
        )
        .await;
    assert_eq!(rsp.status(), 200);
    let events = sse_events(rsp).await;
    let t = types(&events);
    assert_eq!(t.last().map(String::as_str), Some("response.completed"));
    let done = &events.last().expect("events").1["response"];
    assert_eq!(output_text(done), "You said: streamed tls");

    // Both calls, and a third, share one TLS connection (a stream's
    // connection is handed back as soon as its body's end is read, which
    // may trail `[DONE]` by a moment).
    tokio::time::sleep(Duration::from_millis(50)).await;
    gw.create(json!({"model": "fake/m", "input": "again"})).await;
    assert_eq!(gw.upstream.request_count(), 3);
    assert_eq!(gw.upstream.connections(), 1);
}

#[tokio::test]
async fn untrusted_upstream_certificate_is_a_502_naming_tls() {
    let gw = gateway!(Options {
        upstream_tls: true,
        trust_upstream_ca: false,
        ..Default::default()
    });
    let rsp = gw
        .post(
            &gw.key,
            "/v1/responses",
            &json!({"model": "fake/m", "input": "hello"}),
        )
        .await;
    assert_eq!(rsp.status(), 502);
    let body: Value = rsp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "upstream_unavailable", "{body}");
    let msg = body["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("TLS") && msg.contains("certificate"), "{msg}");
    assert_eq!(gw.upstream.request_count(), 0);
}

#[tokio::test]
async fn keep_alive_connections_are_reused_and_closed_ones_dropped() {
    let gw = gateway!(Options::default());
    for i in 0..10 {
        let r = gw
            .create(json!({"model": "fake/m", "input": format!("n{i}")}))
            .await;
        assert_eq!(output_text(&r), format!("You said: n{i}"));
    }
    assert_eq!(gw.upstream.connections(), 1, "sequential calls share one");

    // The upstream says `Connection: close`: that connection is not
    // pooled, and the next call opens a new one.
    let r = gw.create(json!({"model": "fake/m", "input": "CLOSE now"})).await;
    assert_eq!(output_text(&r), "You said: CLOSE now");
    let r = gw.create(json!({"model": "fake/m", "input": "after"})).await;
    assert_eq!(output_text(&r), "You said: after");
    assert_eq!(gw.upstream.connections(), 2);

    // A streamed answer read to its end gives its connection back too.
    let rsp = gw
        .post(
            &gw.key,
            "/v1/responses",
            &json!({"model": "fake/m", "input": "WORDS:20", "stream": true}),
        )
        .await;
    let events = sse_events(rsp).await;
    assert_eq!(
        types(&events).last().map(String::as_str),
        Some("response.completed")
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    gw.create(json!({"model": "fake/m", "input": "then json"})).await;
    assert_eq!(gw.upstream.connections(), 2);
}

#[tokio::test]
async fn upstream_restart_between_calls_is_invisible_to_clients() {
    let mut gw = gateway!(Options::default());
    let addr = gw.upstream.addr();
    gw.create(json!({"model": "fake/m", "input": "before"})).await;

    // The upstream goes away with the gateway's idle connection, and comes
    // back on the same address.
    let old = std::mem::replace(&mut gw.upstream, FakeUpstream::start().await);
    drop(old);
    let mut restarted = None;
    for _ in 0..100 {
        if let Ok(up) = FakeUpstream::start_on(addr).await {
            restarted = Some(up);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.upstream = restarted.expect("upstream rebinds its address");

    for i in 0..3 {
        let r = gw
            .create(json!({"model": "fake/m", "input": format!("after {i}")}))
            .await;
        assert_eq!(output_text(&r), format!("You said: after {i}"), "{r}");
    }
    assert_eq!(gw.upstream.request_count(), 3);
    assert_eq!(gw.upstream.connections(), 1);
}
