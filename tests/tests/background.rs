//! End-to-end: background runs — polling, live and resumed streams, full
//! replay, cancellation and org isolation — over real HTTP.

use std::time::Duration;

use maniac_tests::gateway;
use maniac_tests::harness::*;
use serde_json::{Value, json};

async fn submit(gw: &Gateway, input: &str) -> Value {
    gw.create(json!({"model": "fake/m", "input": input, "background": true}))
        .await
}

#[tokio::test]
async fn background_returns_queued_then_polls_to_completion() {
    let gw = gateway!();
    let r = submit(&gw, "SLOW:50 WORDS:20").await;
    assert_eq!(r["status"], "queued");
    assert_eq!(r["background"], true);
    assert_eq!(r["output"], json!([]));
    assert_eq!(r["usage"], Value::Null);
    let id = r["id"].as_str().unwrap();
    // Partial output is visible while in progress.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut saw_partial = false;
    loop {
        let v: Value = gw
            .get(&gw.key, &format!("/v1/responses/{id}"))
            .await
            .json()
            .await
            .unwrap();
        match v["status"].as_str().unwrap() {
            "in_progress" => {
                if v["output"].as_array().is_some_and(|o| !o.is_empty()) {
                    saw_partial = true;
                }
            }
            "completed" => {
                assert_eq!(v["usage"]["output_tokens"], 20);
                assert_eq!(
                    v["output"][0]["content"][0]["text"]
                        .as_str()
                        .unwrap()
                        .split_whitespace()
                        .count(),
                    20
                );
                break;
            }
            "queued" => {}
            other => panic!("unexpected status {other}: {v}"),
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert!(saw_partial, "never saw partial output while in progress");
    assert_eq!(gw.upstream.count_containing("SLOW:50 WORDS:20"), 1);
}

#[tokio::test]
async fn background_stream_starts_queued_and_replays_identically() {
    let gw = gateway!();
    let rsp = gw.post(&gw.key, "/v1/responses", &json!({"model": "fake/m", "input": "SLOW:10 WORDS:8", "background": true, "stream": true})).await;
    assert_eq!(rsp.status(), 200);
    let live = sse_events(rsp).await;
    let t = types(&live);
    assert_eq!(
        &t[..3],
        ["response.created", "response.queued", "response.in_progress"]
    );
    assert_eq!(live[0].1["response"]["status"], "queued");
    assert_eq!(t.last().unwrap(), "response.completed");
    assert_consecutive(&live, 0);
    let id = live[0].1["response"]["id"].as_str().unwrap();
    // Full replay after completion: same events, same sequence numbers.
    let replay = sse_events(
        gw.get(&gw.key, &format!("/v1/responses/{id}?stream=true")).await,
    )
    .await;
    assert_eq!(replay, live);
    // starting_after replays only later events.
    let tail = sse_events(
        gw.get(
            &gw.key,
            &format!("/v1/responses/{id}?stream=true&starting_after=5"),
        )
        .await,
    )
    .await;
    assert_eq!(tail, live[6..].to_vec());
    let none = sse_events(
        gw.get(
            &gw.key,
            &format!("/v1/responses/{id}?stream=true&starting_after=1000"),
        )
        .await,
    )
    .await;
    assert!(none.is_empty());
}

#[tokio::test]
async fn disconnect_and_resume_has_no_gap_and_no_duplicate() {
    let gw = gateway!();
    let r = submit(&gw, "SLOW:40 WORDS:30").await;
    let id = r["id"].as_str().unwrap().to_string();
    // Read part of the live stream, then disconnect.
    let mut rsp =
        gw.get(&gw.key, &format!("/v1/responses/{id}?stream=true")).await;
    let mut text = String::new();
    while parse_sse(&text).len() < 8 {
        let chunk = rsp.chunk().await.unwrap().expect("stream ended early");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(rsp);
    // Events end on a blank line; keep only whole events.
    let cut = text.rfind("\n\n").unwrap() + 2;
    let first = parse_sse(&text[..cut]);
    let last_seq = first.last().unwrap().1["sequence_number"].as_i64().unwrap();
    let rest = sse_events(
        gw.get(
            &gw.key,
            &format!(
                "/v1/responses/{id}?stream=true&starting_after={last_seq}"
            ),
        )
        .await,
    )
    .await;
    let mut all = first.clone();
    all.extend(rest);
    assert_consecutive(&all, 0);
    assert_eq!(types(&all).last().unwrap(), "response.completed");
    // The run was not affected by the reader leaving.
    let done = wait_terminal(&gw, &gw.key, &id, Duration::from_secs(10)).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(gw.upstream.count_containing("SLOW:40 WORDS:30"), 1);
}

#[tokio::test]
async fn cancel_queued_run_is_immediate_and_idempotent() {
    // One worker, busy with a run that never ends: the next stays queued.
    let gw = gateway!(Options { workers: 1, ..Options::default() });
    let blocker = submit(&gw, "FAULT:hang").await;
    let r = submit(&gw, "never runs").await;
    let id = r["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v: Value = gw
        .get(&gw.key, &format!("/v1/responses/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "queued");
    let rsp = gw
        .post(&gw.key, &format!("/v1/responses/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(rsp.status(), 200);
    let c: Value = rsp.json().await.unwrap();
    assert_eq!(c["status"], "cancelled");
    assert_eq!(c["id"], id);
    let again: Value = gw
        .post(&gw.key, &format!("/v1/responses/{id}/cancel"), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, c);
    let evs = sse_events(
        gw.get(&gw.key, &format!("/v1/responses/{id}?stream=true")).await,
    )
    .await;
    assert_eq!(
        types(&evs),
        ["response.created", "response.queued", "response.failed"]
    );
    assert_eq!(evs[2].1["response"]["status"], "cancelled");
    // Cancel the blocker (running) too, so the worker frees up.
    let b: Value = gw
        .post(
            &gw.key,
            &format!(
                "/v1/responses/{}/cancel",
                blocker["id"].as_str().unwrap()
            ),
            &json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(b["status"], "cancelled");
    assert_eq!(gw.upstream.count_containing("never runs"), 0);
}

#[tokio::test]
async fn cancel_running_run_stops_upstream_and_keeps_partial_output() {
    let gw = gateway!();
    let r = submit(&gw, "SLOW:100 WORDS:200").await;
    let id = r["id"].as_str().unwrap().to_string();
    // A live reader must see the stream end.
    let reader = {
        let (url, key) = (
            gw.url(&format!("/v1/responses/{id}?stream=true")),
            gw.key.clone(),
        );
        tokio::spawn(async move {
            sse_events(http().get(url).bearer_auth(key).send().await.unwrap())
                .await
        })
    };
    // Wait for some text.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v: Value = gw
            .get(&gw.key, &format!("/v1/responses/{id}"))
            .await
            .json()
            .await
            .unwrap();
        if v["output"].as_array().is_some_and(|o| !o.is_empty()) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t0 = std::time::Instant::now();
    let rsp = gw
        .post(&gw.key, &format!("/v1/responses/{id}/cancel"), &json!({}))
        .await;
    let took = t0.elapsed();
    assert_eq!(rsp.status(), 200);
    let c: Value = rsp.json().await.unwrap();
    assert_eq!(c["status"], "cancelled");
    assert!(took < Duration::from_secs(2), "cancel took {took:?}");
    let text = c["output"][0]["content"][0]["text"].as_str().unwrap();
    assert!(
        !text.is_empty() && text.split_whitespace().count() < 200,
        "partial output kept: {text}"
    );
    // The upstream stream was closed promptly.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while gw.upstream.open_streams() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "upstream still streaming after cancel"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let evs = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("reader released")
        .unwrap();
    let last = &evs.last().unwrap().1;
    assert_eq!(last["type"], "response.failed");
    assert_eq!(last["response"]["status"], "cancelled");
    assert_consecutive(&evs, 0);
    // Idempotent; and a finished run cannot be cancelled.
    let again: Value = gw
        .post(&gw.key, &format!("/v1/responses/{id}/cancel"), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["status"], "cancelled");
    let done = submit(&gw, "quick").await;
    let done_id = done["id"].as_str().unwrap();
    wait_terminal(&gw, &gw.key, done_id, Duration::from_secs(10)).await;
    let rsp = gw
        .post(&gw.key, &format!("/v1/responses/{done_id}/cancel"), &json!({}))
        .await;
    assert_eq!(rsp.status(), 400);
    let e: Value = rsp.json().await.unwrap();
    assert_eq!(e["error"]["message"], "Cannot cancel a completed response.");
}

#[tokio::test]
async fn background_runs_are_org_scoped() {
    let gw = gateway!();
    let other = gw.key_for_org("intruders").await;
    let r = submit(&gw, "SLOW:20 WORDS:10").await;
    let id = r["id"].as_str().unwrap();
    assert_eq!(
        gw.get(&other, &format!("/v1/responses/{id}")).await.status(),
        404
    );
    assert_eq!(
        gw.get(&other, &format!("/v1/responses/{id}?stream=true"))
            .await
            .status(),
        404
    );
    assert_eq!(
        gw.post(&other, &format!("/v1/responses/{id}/cancel"), &json!({}))
            .await
            .status(),
        404
    );
    let done = wait_terminal(&gw, &gw.key, id, Duration::from_secs(10)).await;
    assert_eq!(done["status"], "completed");
}

#[tokio::test]
async fn upstream_failure_fails_the_run_with_a_terminal_event() {
    let gw = gateway!();
    let r = submit(&gw, "FAULT:500").await;
    let id = r["id"].as_str().unwrap();
    let done = wait_terminal(&gw, &gw.key, id, Duration::from_secs(10)).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error"]["code"], "server_error");
    let evs = sse_events(
        gw.get(&gw.key, &format!("/v1/responses/{id}?stream=true")).await,
    )
    .await;
    assert_eq!(evs.last().unwrap().0, "error");
    let r = submit(&gw, "FAULT:reset a b c d e").await;
    let done = wait_terminal(
        &gw,
        &gw.key,
        r["id"].as_str().unwrap(),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(done["status"], "failed");
}

#[tokio::test]
async fn five_hundred_concurrent_runs_complete_with_bounded_workers() {
    let gw = gateway!(Options { workers: 8, ..Options::default() });
    let mut ids = Vec::new();
    let submits = (0..500).map(|i| {
        let gw = &gw;
        async move { submit(gw, &format!("run-{i} SLOW:1 WORDS:3")).await }
    });
    for r in futures::future::join_all(submits).await {
        ids.push(r["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        let done =
            wait_terminal(&gw, &gw.key, id, Duration::from_secs(120)).await;
        assert_eq!(done["status"], "completed", "{done}");
    }
    assert_eq!(gw.upstream.request_count(), 500);
    for i in [0, 250, 499] {
        assert_eq!(gw.upstream.count_containing(&format!("run-{i} SLOW")), 1);
    }
}

#[tokio::test]
async fn expired_lease_fails_the_run_and_releases_readers() {
    // One worker, kept busy, so the gateway cannot claim the next run.
    let gw =
        gateway!(Options { workers: 1, lease_ms: 600, ..Options::default() });
    let blocker = submit(&gw, "FAULT:hang").await;
    let r = submit(&gw, "orphan").await;
    let id = r["id"].as_str().unwrap().to_string();
    // Another "replica" claims the run and dies without renewing its lease.
    let claimed = gw
        .store
        .claim_next("dead-replica", 300, maniac_server::store::now_ms())
        .await
        .unwrap()
        .expect("claimable");
    assert_eq!(claimed.id, id);
    let reader = {
        let (url, key) = (
            gw.url(&format!("/v1/responses/{id}?stream=true")),
            gw.key.clone(),
        );
        tokio::spawn(async move {
            sse_events(http().get(url).bearer_auth(key).send().await.unwrap())
                .await
        })
    };
    let done = wait_terminal(&gw, &gw.key, &id, Duration::from_secs(10)).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error"]["code"], "server_error");
    assert!(done["error"]["message"].as_str().unwrap().contains("interrupted"));
    let evs = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("reader released")
        .unwrap();
    assert_eq!(evs.last().unwrap().0, "error");
    assert_consecutive(&evs, 0);
    assert_eq!(gw.upstream.count_containing("orphan"), 0);
    gw.post(
        &gw.key,
        &format!("/v1/responses/{}/cancel", blocker["id"].as_str().unwrap()),
        &json!({}),
    )
    .await;
}

/// Reports queue-to-start latency as a client sees it: the gap between the
/// `response.queued` and `response.in_progress` events of a live
/// background stream. Printed, not asserted (speed is the benchmarks' job);
/// the test checks the events arrive and that wake-ups, not the poll
/// interval, start runs.
#[tokio::test]
async fn queue_to_start_latency_is_reported() {
    let gw = gateway!();
    let mut gaps = Vec::new();
    for i in 0..20 {
        let mut rsp = gw
            .post(&gw.key, "/v1/responses", &json!({"model": "echo/m", "input": format!("q{i}"), "background": true, "stream": true}))
            .await;
        let mut text = String::new();
        let mut queued_at = None;
        let gap = loop {
            let chunk = rsp.chunk().await.unwrap().expect("stream ended early");
            text.push_str(&String::from_utf8_lossy(&chunk));
            if queued_at.is_none() && text.contains("event: response.queued") {
                queued_at = Some(std::time::Instant::now());
            }
            if text.contains("event: response.in_progress") {
                break queued_at.map(|t| t.elapsed()).unwrap_or_default();
            }
        };
        gaps.push(gap.as_secs_f64() * 1000.0);
        drop(rsp);
    }
    gaps.sort_by(f64::total_cmp);
    eprintln!(
        "queue-to-start ({}): p50 {:.2} ms, max {:.2} ms over {} runs",
        backend(),
        gaps[gaps.len() / 2],
        gaps[gaps.len() - 1],
        gaps.len()
    );
}

#[tokio::test]
async fn a_run_queued_by_the_previous_version_is_executed() {
    let gw = gateway!();
    // A queued row exactly as the version before item-level runs wrote it:
    // no `v`, a flat provider request with `messages`.
    let template = gw
        .create(json!({"model": "fake/m", "input": "template", "store": true}))
        .await;
    let id = maniac_server::ids::response_id();
    let mut body = template.clone();
    body["id"] = json!(id);
    body["status"] = json!("queued");
    body["background"] = json!(true);
    body["output"] = json!([]);
    body["usage"] = Value::Null;
    body["completed_at"] = Value::Null;
    let v1 = json!({
        "provider": "fake",
        "request": {
            "model": "m", "instructions": null,
            "messages": [{"role": "user",
                          "parts": [{"type": "input_text", "text": "legacy run"}]}],
            "max_output_tokens": null, "temperature": null, "top_p": null,
            "reasoning_effort": null, "text_format": null, "user": null
        },
        "obfuscate": true
    });
    let org = gw
        .store
        .find_key(&maniac_server::auth::hash(&gw.key))
        .await
        .unwrap()
        .expect("key")
        .org_id;
    gw.store
        .insert_response(maniac_server::store::NewResponse {
            id: id.clone(),
            org_id: org,
            previous_response_id: None,
            status: maniac_server::api::ResponseStatus::Queued,
            background: true,
            body: body.to_string(),
            run_request: Some(v1.to_string()),
            input_items: Vec::new(),
            output_items: Vec::new(),
            events: Vec::new(),
            created_at: maniac_server::store::now_ms(),
        })
        .await
        .unwrap();
    let done = wait_terminal(&gw, &gw.key, &id, Duration::from_secs(10)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["output"][0]["content"][0]["text"], "You said: legacy run");
    assert_eq!(gw.upstream.count_containing("legacy run"), 1);
}

#[tokio::test]
async fn starting_after_the_largest_sequence_number_replays_nothing_and_follows()
 {
    let gw = gateway!();
    let r = submit(&gw, "SLOW:40 WORDS:12").await;
    let id = r["id"].as_str().unwrap();
    let rsp = gw
        .get(
            &gw.key,
            &format!(
                "/v1/responses/{id}?stream=true&starting_after={}",
                i64::MAX
            ),
        )
        .await;
    assert_eq!(rsp.status(), 200);
    let body = rsp.text().await.unwrap();
    assert!(!body.contains("data:"), "events replayed: {body}");
    // The stream followed the run to its end instead of stopping early.
    let done: Value = gw
        .get(&gw.key, &format!("/v1/responses/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(done["status"], "completed", "{done}");
}
