//! The byte budget of request bodies in flight (`[limits]
//! max_inflight_body_bytes`) over real HTTP: while large requests hold
//! it, further ones are refused with 503 `server_overloaded` and
//! `Retry-After` before their bodies are read; once they end, the bytes
//! come back and a later request succeeds.

use std::time::{Duration, Instant};

use maniac_tests::gateway;
use maniac_tests::harness::{Gateway, Options, http};
use serde_json::{Value, json};

/// The budget: room for two of [`BIG`] bodies, not three.
const BUDGET: u64 = 1_500_000;
/// About 600 KB of input.
const BIG: usize = 600_000;

fn big_input(marker: &str) -> String {
    format!("{marker} {}", "x".repeat(BIG))
}

/// Waits until the upstream sees `n` calls in flight.
async fn until_in_flight(gw: &Gateway, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while gw.upstream.in_flight() != n {
        assert!(
            Instant::now() < deadline,
            "upstream in flight: {} (want {n})",
            gw.upstream.in_flight()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn assert_overloaded(status: u16, retry_after: Option<&str>, body: &str) {
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after, Some("1"), "Retry-After");
    let e: Value = serde_json::from_str(body).expect("JSON error");
    let err = &e["error"];
    assert_eq!(err["code"], "server_overloaded", "{e}");
    assert_eq!(err["type"], "server_error", "{e}");
    assert_eq!(err["param"], Value::Null, "{e}");
    assert!(
        err["message"].as_str().unwrap().contains("max_inflight_body_bytes")
    );
}

async fn post(
    gw: &Gateway,
    path: &str,
    body: &Value,
) -> (u16, Option<String>, String) {
    let rsp = gw.post(&gw.key, path, body).await;
    let status = rsp.status().as_u16();
    let retry = rsp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, retry, rsp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bodies_past_the_budget_get_503_and_the_budget_comes_back() {
    let gw = gateway!(Options {
        max_inflight_body_bytes: Some(BUDGET),
        ..Options::default()
    });
    // Two large requests that hang upstream hold most of the budget.
    let holders: Vec<_> = (0..2)
        .map(|_| {
            let (url, key) = (gw.url("/v1/responses"), gw.key.clone());
            tokio::spawn(async move {
                http()
                    .post(url)
                    .bearer_auth(key)
                    .json(&json!({"model": "fake/m",
                                  "input": big_input("FAULT:hang")}))
                    .send()
                    .await
            })
        })
        .collect();
    until_in_flight(&gw, 2).await;

    // Concurrent large bodies beyond the budget, on both front ends.
    let refused = futures::future::join_all((0..6).map(|i| {
        let gw = &gw;
        async move {
            if i % 2 == 0 {
                let body = json!({"model": "fake/m", "input": big_input("hi")});
                post(gw, "/v1/responses", &body).await
            } else {
                let body = json!({"model": "fake/m", "messages":
                    [{"role": "user", "content": big_input("hi")}]});
                post(gw, "/v1/chat/completions", &body).await
            }
        }
    }))
    .await;
    for (status, retry, body) in &refused {
        assert_overloaded(*status, retry.as_deref(), body);
    }
    assert_eq!(gw.upstream.in_flight(), 2, "no refused request went upstream");

    // A body without Content-Length reserves the largest accepted body.
    let chunks = futures::stream::iter([Ok::<_, std::io::Error>(
        bytes::Bytes::from(r#"{"model":"echo/m","input":"chunked"}"#),
    )]);
    let rsp = http()
        .post(gw.url("/v1/responses"))
        .bearer_auth(&gw.key)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    let status = rsp.status().as_u16();
    let retry = rsp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    assert_overloaded(status, retry.as_deref(), &rsp.text().await.unwrap());

    // Small bodies still fit beside the holders.
    let small = json!({"model": "echo/m", "input": "small"});
    assert_eq!(post(&gw, "/v1/responses", &small).await.0, 200);

    // The holders leave: their bytes come back, and a large body fits.
    for h in &holders {
        h.abort();
    }
    until_in_flight(&gw, 0).await;
    let later = json!({"model": "fake/m", "input": big_input("later")});
    let (status, _, body) = post(&gw, "/v1/responses", &later).await;
    assert_eq!(status, 200, "{body}");
    let update = json!({"metadata": {"k": "v"}});
    let (status, _, _) =
        post(&gw, "/v1/chat/completions/chatcmpl-missing", &update).await;
    assert_eq!(status, 404, "an admitted update reaches the handler");
    gw.stop().await;
}
