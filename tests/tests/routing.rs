//! End-to-end routing over real HTTP: an alias over two fake upstreams
//! (`primary/m`, `backup/m`). Failures before the first output are
//! retried and then failed over, and the upstreams' request counters
//! prove the number of attempts; a mid-stream failure and the request's
//! own faults are not retried; the breaker skips a failing target and
//! probes it again; round robin and least busy spread the load; an
//! upstream killed mid-test is failed over; background runs fail over
//! too.

use std::collections::BTreeMap;
use std::time::Duration;

use maniac_server::providers::ProviderConfig;
use maniac_server::providers::openai_chat::ChatConfig;
use maniac_server::routing::{AliasConfig, RoutingConfig};
use maniac_tests::harness::{
    Gateway, Options, parse_sse, types, wait_terminal,
};
use maniac_tests::upstream::FakeUpstream;
use serde_json::{Value, json};

/// A gateway with providers `primary` and `backup` (one fake upstream
/// each) and the alias `smart` over `primary/m` then `backup/m`.
struct Pair {
    gw: Gateway,
    primary: Option<FakeUpstream>,
    backup: FakeUpstream,
}

impl Pair {
    fn primary(&self) -> &FakeUpstream {
        self.primary.as_ref().expect("primary is up")
    }
}

fn fast_routing() -> RoutingConfig {
    RoutingConfig {
        max_retries: Some(2),
        backoff_initial_ms: Some(1),
        backoff_max_ms: Some(5),
        // Tests of the breaker set their own.
        breaker_failures: Some(100),
        ..RoutingConfig::default()
    }
}

fn provider(up: &FakeUpstream, first_byte_secs: u64) -> ProviderConfig {
    ProviderConfig::OpenAiChat(ChatConfig {
        request_timeout_secs: Some(first_byte_secs),
        ..ChatConfig::at(up.base_url())
    })
}

async fn pair_with(alias: Value, routing: RoutingConfig) -> Option<Pair> {
    pair_leased(alias, routing, Options::default().lease_ms).await
}

async fn pair_leased(
    alias: Value,
    routing: RoutingConfig,
    lease_ms: i64,
) -> Option<Pair> {
    let primary = FakeUpstream::start().await;
    let backup = FakeUpstream::start().await;
    let alias: AliasConfig = serde_json::from_value(alias).expect("alias");
    let gw = Gateway::start_with(Options {
        extra_providers: vec![
            ("primary".into(), provider(&primary, 1)),
            ("backup".into(), provider(&backup, 30)),
        ],
        routing,
        aliases: BTreeMap::from([("smart".to_string(), alias)]),
        lease_ms,
        ..Options::default()
    })
    .await?;
    Some(Pair { gw, primary: Some(primary), backup })
}

async fn pair() -> Option<Pair> {
    pair_with(json!({"targets": ["primary/m", "backup/m"]}), fast_routing())
        .await
}

macro_rules! pair {
    ($e:expr) => {
        match $e.await {
            Some(p) => p,
            None => return,
        }
    };
}

fn responses(text: &str, stream: bool) -> Value {
    json!({"model": "smart", "input": text, "stream": stream, "store": false})
}

fn chat(text: &str, stream: bool) -> Value {
    json!({"model": "smart", "stream": stream,
           "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn a_failing_first_target_is_retried_then_failed_over_on_both_front_ends()
{
    let p = pair!(pair());
    p.primary().fail_all(Some("FAULT:500"));
    let gw = &p.gw;

    let rsp = gw.post(&gw.key, "/v1/responses", &responses("hi", false)).await;
    assert_eq!(rsp.status(), 200);
    let v: Value = rsp.json().await.unwrap();
    assert_eq!(v["provider"], "backup");
    assert_eq!(v["model"], "smart");
    assert_eq!(v["output"][0]["content"][0]["text"], "You said: hi");
    // One call and two retries on the primary, then the backup.
    assert_eq!(p.primary().request_count(), 3);
    assert_eq!(p.backup.request_count(), 1);
    assert_eq!(p.backup.requests()[0].body["model"], "m");

    let rsp = gw.post(&gw.key, "/v1/responses", &responses("hi", true)).await;
    assert_eq!(rsp.status(), 200);
    let events = parse_sse(&rsp.text().await.unwrap());
    assert_eq!(events[0].1["response"]["provider"], "backup");
    let last = events.last().unwrap();
    assert_eq!(last.0, "response.completed");
    assert_eq!(last.1["response"]["provider"], "backup");
    assert_eq!(p.primary().request_count(), 6);
    assert_eq!(p.backup.request_count(), 2);

    let rsp =
        gw.post(&gw.key, "/v1/chat/completions", &chat("yo", false)).await;
    assert_eq!(rsp.status(), 200);
    let v: Value = rsp.json().await.unwrap();
    assert_eq!(v["provider"], "backup");
    assert_eq!(v["model"], "smart");
    assert_eq!(v["choices"][0]["message"]["content"], "You said: yo");

    let rsp = gw.post(&gw.key, "/v1/chat/completions", &chat("yo", true)).await;
    let text = rsp.text().await.unwrap();
    assert!(text.contains("You") && text.ends_with("data: [DONE]\n\n"));
    assert_eq!(p.primary().request_count(), 12);
    assert_eq!(p.backup.request_count(), 4);
}

#[tokio::test]
async fn rate_limits_and_timeouts_fail_over_too() {
    let p = pair!(pair_with(
        json!({"targets": ["primary/m", "backup/m"], "max_retries": 0}),
        fast_routing(),
    ));
    let gw = &p.gw;
    // 429 with Retry-After: 7; capped by backoff_max_ms, and with no
    // retries left it goes straight to the backup.
    p.primary().fail_all(Some("FAULT:429"));
    let v: Value = gw
        .post(&gw.key, "/v1/responses", &responses("a", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["provider"], "backup", "{v}");
    assert_eq!(p.primary().request_count(), 1);

    // A primary that never answers: its 1 s first-byte timeout fires.
    p.primary().fail_all(Some("FAULT:hang"));
    let v: Value = gw
        .post(&gw.key, "/v1/responses", &responses("b", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["provider"], "backup", "{v}");
    assert_eq!(p.primary().request_count(), 2);
    assert_eq!(p.backup.request_count(), 2);
}

#[tokio::test]
async fn the_requests_own_faults_and_mid_stream_failures_are_not_retried() {
    let p = pair!(pair());
    let gw = &p.gw;
    let rsp =
        gw.post(&gw.key, "/v1/responses", &responses("FAULT:400", false)).await;
    assert_eq!(rsp.status(), 400);
    let e: Value = rsp.json().await.unwrap();
    assert_eq!(e["error"]["code"], "upstream_rejected");
    assert_eq!(p.primary().request_count(), 1);
    assert_eq!(p.backup.request_count(), 0);

    // Two deltas reach the client, then the primary cuts the stream: the
    // response ends with the terminal error, nothing is replayed.
    let rsp = gw
        .post(&gw.key, "/v1/responses", &responses("FAULT:reset", true))
        .await;
    let events = parse_sse(&rsp.text().await.unwrap());
    let t = types(&events);
    assert!(t.contains(&"response.output_text.delta".to_string()), "{t:?}");
    assert_eq!(t.last().unwrap(), "error", "{t:?}");
    assert_eq!(p.primary().request_count(), 2);
    assert_eq!(p.backup.request_count(), 0);
}

#[tokio::test]
async fn direct_calls_are_retried_on_the_same_provider() {
    let p = pair!(pair());
    let gw = &p.gw;
    p.primary().fail_all(Some("FAULT:500"));
    let body = json!({"model": "primary/m", "input": "x", "store": false});
    let rsp = gw.post(&gw.key, "/v1/responses", &body).await;
    assert_eq!(rsp.status(), 502);
    let e: Value = rsp.json().await.unwrap();
    assert_eq!(e["error"]["code"], "upstream_error");
    assert_eq!(
        e["error"]["message"],
        "The upstream provider `primary` answered 500 (code: server_error).",
        "our words, the upstream's status and code, never its text"
    );
    assert_eq!(p.primary().request_count(), 3, "one call and two retries");
    p.primary().fail_all(None);
    let rsp = gw.post(&gw.key, "/v1/responses", &body).await;
    assert_eq!(rsp.status(), 200);
}

#[tokio::test]
async fn an_upstream_killed_mid_test_is_failed_over() {
    let mut p = pair!(pair());
    let gw = &p.gw;
    let v: Value = gw
        .post(&gw.key, "/v1/chat/completions", &chat("one", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["provider"], "primary");
    // The primary goes away: connections refused from now on.
    drop(p.primary.take());
    for stream in [false, true] {
        let rsp =
            gw.post(&gw.key, "/v1/responses", &responses("two", stream)).await;
        assert_eq!(rsp.status(), 200);
        let text = rsp.text().await.unwrap();
        assert!(text.contains("\"provider\":\"backup\""), "{text}");
        assert!(text.contains("You said: two"), "{text}");
    }
    assert_eq!(p.backup.request_count(), 2);
}

#[tokio::test]
async fn the_breaker_skips_a_failing_target_and_probes_it_after_the_cooldown() {
    let p = pair!(pair_with(
        json!({"targets": ["primary/m", "backup/m"], "max_retries": 0,
               "breaker_failures": 2, "breaker_cooldown_secs": 1}),
        fast_routing(),
    ));
    let gw = &p.gw;
    p.primary().fail_all(Some("FAULT:500"));
    for _ in 0..2 {
        let v: Value = gw
            .post(&gw.key, "/v1/responses", &responses("x", false))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["provider"], "backup");
    }
    assert_eq!(p.primary().request_count(), 2);
    // Open: the primary is not called at all.
    for _ in 0..3 {
        let v: Value = gw
            .post(&gw.key, "/v1/responses", &responses("x", false))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["provider"], "backup");
    }
    assert_eq!(p.primary().request_count(), 2);
    assert_eq!(p.backup.request_count(), 5);
    // After the cooldown one probe goes to the (healed) primary and
    // closes the breaker. The wait is the cooldown being tested, not a
    // synchronization.
    p.primary().fail_all(None);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..2 {
        let v: Value = gw
            .post(&gw.key, "/v1/responses", &responses("x", false))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["provider"], "primary");
    }
    assert_eq!(p.primary().request_count(), 4);
}

#[tokio::test]
async fn with_every_breaker_open_the_least_recently_failed_target_is_tried() {
    let p = pair!(pair_with(
        json!({"targets": ["primary/m", "backup/m"], "max_retries": 0,
               "breaker_failures": 1, "breaker_cooldown_secs": 60}),
        fast_routing(),
    ));
    let gw = &p.gw;
    p.primary().fail_all(Some("FAULT:500"));
    p.backup.fail_all(Some("FAULT:500"));
    let rsp = gw.post(&gw.key, "/v1/responses", &responses("x", false)).await;
    assert_eq!(rsp.status(), 502);
    assert_eq!((p.primary().request_count(), p.backup.request_count()), (1, 1));
    // Both open; the primary failed first, so it is the one tried.
    p.primary().fail_all(None);
    let v: Value = gw
        .post(&gw.key, "/v1/responses", &responses("x", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["provider"], "primary", "{v}");
    assert_eq!((p.primary().request_count(), p.backup.request_count()), (2, 1));
}

#[tokio::test]
async fn round_robin_alternates_and_least_busy_avoids_the_busy_target() {
    let p = pair!(pair_with(
        json!({"targets": ["primary/m", "backup/m"], "strategy": "round_robin"}),
        fast_routing(),
    ));
    let gw = &p.gw;
    let mut served = Vec::new();
    for _ in 0..4 {
        let v: Value = gw
            .post(&gw.key, "/v1/responses", &responses("x", false))
            .await
            .json()
            .await
            .unwrap();
        served.push(v["provider"].as_str().unwrap().to_string());
    }
    assert_eq!(served, ["primary", "backup", "primary", "backup"]);

    let p = pair!(pair_with(
        json!({"targets": ["primary/m", "backup/m"], "strategy": "least_busy"}),
        fast_routing(),
    ));
    let gw = &p.gw;
    // A slow stream holds the primary; its first delta proves it is in
    // flight before the next request is routed.
    let mut slow = gw
        .post(&gw.key, "/v1/responses", &responses("SLOW:300 WORDS:5", true))
        .await;
    let mut seen = String::new();
    while !seen.contains("output_text.delta") {
        let chunk = slow.chunk().await.unwrap().expect("a delta");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("\"provider\":\"primary\""));
    let v: Value = gw
        .post(&gw.key, "/v1/responses", &responses("x", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["provider"], "backup");
    drop(slow);
}

#[tokio::test]
async fn background_runs_fail_over_too() {
    let p = pair!(pair());
    let gw = &p.gw;
    p.primary().fail_all(Some("FAULT:500"));
    let body = json!({"model": "smart", "input": "later", "background": true});
    let v: Value =
        gw.post(&gw.key, "/v1/responses", &body).await.json().await.unwrap();
    let id = v["id"].as_str().unwrap();
    let done = wait_terminal(gw, &gw.key, id, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["provider"], "backup");
    assert_eq!(done["model"], "smart");
    assert_eq!(done["output"][0]["content"][0]["text"], "You said: later");
    assert_eq!(p.primary().request_count(), 3);
    assert_eq!(p.backup.request_count(), 1);
}

#[tokio::test]
async fn a_background_run_keeps_its_lease_while_it_fails_over_slowly() {
    // The primary never answers: its 1 s first-byte timeout is longer
    // than the 400 ms lease, which the worker must keep renewing.
    let p = pair!(pair_leased(
        json!({"targets": ["primary/m", "backup/m"], "max_retries": 0}),
        fast_routing(),
        400,
    ));
    let gw = &p.gw;
    p.primary().fail_all(Some("FAULT:hang"));
    let body =
        json!({"model": "smart", "input": "patient", "background": true});
    let v: Value =
        gw.post(&gw.key, "/v1/responses", &body).await.json().await.unwrap();
    let id = v["id"].as_str().unwrap();
    let done = wait_terminal(gw, &gw.key, id, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["provider"], "backup");
    assert_eq!(p.backup.request_count(), 1);
}

#[tokio::test]
async fn aliases_are_listed_and_bad_alias_configs_are_errors_naming_them() {
    let p = pair!(pair());
    let gw = &p.gw;
    let list: Value = gw.get(&gw.key, "/v1/models").await.json().await.unwrap();
    let smart = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "smart")
        .expect("the alias is listed");
    assert_eq!(smart["owned_by"], "maniac");
    let one = gw.get(&gw.key, "/v1/models/smart").await;
    assert_eq!(one.status(), 200);

    let bad = |targets: Value| {
        let mut file = maniac_server::config::FileConfig::default();
        file.models.insert(
            "x".into(),
            serde_json::from_value(json!({"targets": targets})).unwrap(),
        );
        file.providers().err().expect("refused")
    };
    let e = bad(json!(["nowhere/m"]));
    assert!(e.contains("models.\"x\"") && e.contains("nowhere"), "{e}");
    let e = bad(json!(["no-slash"]));
    assert!(e.contains("provider/model"), "{e}");
    let e = bad(json!([]));
    assert!(e.contains("at least one"), "{e}");
}

/// One config with the three protocols side by side (OpenAI-compatible
/// chat, Anthropic, a native Responses upstream) and an alias across
/// them: killing the serving upstreams one after the other moves the
/// alias to the next protocol, on both front ends.
#[tokio::test]
async fn an_alias_across_protocols_fails_over_as_upstreams_are_killed() {
    use maniac_server::providers::openai_responses::ResponsesConfig;
    use maniac_tests::anthropic::{self, FakeAnthropic, TEST_KEY};
    use maniac_tests::responses_upstream::FakeResponsesUpstream;

    let mut chat = Some(FakeUpstream::start().await);
    let mut claude = Some(FakeAnthropic::start(Some(TEST_KEY)).await);
    let native = FakeResponsesUpstream::start().await;
    let alias: AliasConfig = serde_json::from_value(json!({
        "targets": ["local/m", "claude/claude-x", "native/gpt-x"],
        "max_retries": 0
    }))
    .unwrap();
    let Some(gw) = Gateway::start_with(Options {
        extra_providers: vec![
            ("local".into(), provider(chat.as_ref().unwrap(), 5)),
            (
                "claude".into(),
                ProviderConfig::Anthropic(anthropic::config(
                    claude.as_ref().unwrap(),
                )),
            ),
            (
                "native".into(),
                ProviderConfig::OpenAiResponses(ResponsesConfig::new(
                    native.base_url(),
                )),
            ),
        ],
        routing: fast_routing(),
        aliases: BTreeMap::from([("any".to_string(), alias)]),
        ..Options::default()
    })
    .await
    else {
        return;
    };
    let ask = |stream: bool, text: &str| json!({"model": "any", "input": text, "stream": stream, "store": false});
    let served = |text: &str| -> String {
        let marker = "\"provider\":\"";
        let i = text.rfind(marker).expect("a provider") + marker.len();
        text[i..].split('"').next().unwrap().to_string()
    };
    for (expect, kill) in [("local", 0), ("claude", 1), ("native", 2)] {
        match kill {
            1 => drop(chat.take()),
            2 => drop(claude.take()),
            _ => {}
        }
        for stream in [false, true] {
            let rsp =
                gw.post(&gw.key, "/v1/responses", &ask(stream, "hi")).await;
            assert_eq!(rsp.status(), 200);
            let text = rsp.text().await.unwrap();
            assert!(text.contains("You said"), "{text}");
            assert_eq!(served(&text), expect, "{text}");
        }
        let body = json!({"model": "any", "messages": [{"role": "user", "content": "yo"}]});
        let v: Value = gw
            .post(&gw.key, "/v1/chat/completions", &body)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["provider"], expect, "{v}");
        assert_eq!(v["choices"][0]["message"]["content"], "You said: yo");
    }
}

/// Unix time in µs.
fn now_us() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

/// Streams a slow first token and returns when the client saw
/// `response.created` and when the upstream sent its first content chunk
/// (the fake stamps it).
async fn created_and_first_chunk(gw: &Gateway) -> (u128, u128) {
    let body = json!({"model": "fake/m", "stream": true,
                      "input": "SLOW:1500 STAMP WORDS:1"});
    let mut rsp = gw.post(&gw.key, "/v1/responses", &body).await;
    assert_eq!(rsp.status(), 200);
    let (mut created, mut text) = (None, String::new());
    while let Some(chunk) = rsp.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk));
        if created.is_none() && text.contains("response.created") {
            created = Some(now_us());
        }
        if text.contains("response.completed") {
            break;
        }
    }
    let events = parse_sse(&text);
    let delta = events
        .iter()
        .find(|(t, _)| t == "response.output_text.delta")
        .and_then(|(_, v)| v["delta"].as_str())
        .expect("a delta");
    let stamp = delta
        .strip_prefix("[t=")
        .and_then(|s| s.split(']').next())
        .and_then(|s| s.parse().ok())
        .expect("a stamped chunk");
    (created.expect("response.created"), stamp)
}

#[tokio::test]
async fn response_created_does_not_wait_for_a_slow_first_token() {
    // Retries allowed (the default): the look-ahead for an early failure
    // is bounded; and on the last possible attempt there is none.
    for max_retries in [2, 0] {
        let Some(gw) = Gateway::start_with(Options {
            routing: RoutingConfig {
                max_retries: Some(max_retries),
                ..RoutingConfig::default()
            },
            ..Options::default()
        })
        .await
        else {
            return;
        };
        let (created, first_chunk) = created_and_first_chunk(&gw).await;
        assert!(
            created < first_chunk,
            "max_retries {max_retries}: response.created came {} µs after \
             the upstream's first chunk",
            created - first_chunk
        );
    }
}
