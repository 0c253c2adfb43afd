//! `GET /metrics` over real HTTP: a scrape before and after a known mix
//! of requests moves each counter by exactly what was done and each
//! histogram's count with it; `[metrics] listen` moves the endpoint to
//! its own listener; `[metrics] token_env` protects it; and the access
//! log of the real binary has a line for a 401, with its request id and
//! never the key.

use std::collections::BTreeMap;
use std::time::Duration;

use maniac_server::metrics::MetricsConfig;
use maniac_server::providers::ProviderConfig;
use maniac_server::providers::openai_chat::ChatConfig;
use maniac_server::routing::{AliasConfig, RoutingConfig};
use maniac_tests::harness::{Gateway, Options, TestDb, http, sse_events};
use maniac_tests::process::{Maniac, write_config};
use maniac_tests::upstream::FakeUpstream;
use serde_json::{Value, json};

/// The token `.cargo/config.toml` sets for every test process.
const TOKEN_ENV: &str = "MANIAC_TEST_METRICS_TOKEN";

/// One scrape: series (name and sorted labels) to value.
#[derive(Debug)]
struct Scrape(BTreeMap<String, f64>);

/// The key of a series: `name{a="x",b="y"}` with labels sorted.
fn series(name: &str, labels: &[(&str, &str)]) -> String {
    let mut l: Vec<_> = labels.to_vec();
    l.sort();
    let inner: Vec<String> =
        l.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut out = BTreeMap::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (head, value) = line.rsplit_once(' ').expect("sample line");
            let value: f64 = value.parse().expect("sample value");
            let (name, labels) = match head.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (head, ""),
            };
            let pairs: Vec<(&str, &str)> = labels
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').expect("label");
                    (k, v.trim_matches('"'))
                })
                .collect();
            out.insert(series(name, &pairs), value);
        }
        Scrape(out)
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0.get(&series(name, labels)).copied().unwrap_or(0.0)
    }
}

async fn scrape(base: &str, token: Option<&str>) -> (u16, String) {
    let mut req = http().get(format!("{base}/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let rsp = req.send().await.expect("scrape");
    (rsp.status().as_u16(), rsp.text().await.expect("body"))
}

async fn scraped(base: &str) -> Scrape {
    let (status, text) = scrape(base, None).await;
    assert_eq!(status, 200, "{text}");
    Scrape::parse(&text)
}

/// Fails every request with HTTP 500.
fn failing_provider(up: &FakeUpstream) -> ProviderConfig {
    up.fail_all(Some("FAULT:500"));
    ProviderConfig::OpenAiChat(ChatConfig::at(up.base_url()))
}

/// A gateway with `fake`, a provider `down` that always fails, and the
/// alias `smart` over `down/m` then `fake/listed-model`.
async fn gateway_with_a_failing_provider(
    down: &FakeUpstream,
) -> Option<Gateway> {
    let alias: AliasConfig = serde_json::from_value(json!({
        "targets": ["down/m", "fake/listed-model"]
    }))
    .expect("alias");
    Gateway::start_with(Options {
        extra_providers: vec![("down".into(), failing_provider(down))],
        aliases: [("smart".to_string(), alias)].into_iter().collect(),
        routing: RoutingConfig {
            max_retries: Some(1),
            backoff_initial_ms: Some(1),
            backoff_max_ms: Some(2),
            breaker_failures: Some(100),
            ..RoutingConfig::default()
        },
        ..Options::default()
    })
    .await
}

/// Usage of a Responses answer as `(input, output)`.
fn usage(v: &Value) -> (f64, f64) {
    let u = &v["usage"];
    let n = |k: &str| u[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"));
    (n("input_tokens"), n("output_tokens"))
}

#[tokio::test]
async fn a_known_mix_of_requests_moves_every_counter_by_exactly_that() {
    let down = FakeUpstream::start().await;
    let Some(gw) = gateway_with_a_failing_provider(&down).await else {
        return;
    };
    let before = scraped(&gw.base).await;

    // JSON and SSE creates, on a listed model.
    let json_answer = gw
        .create(json!({"model": "fake/listed-model", "input": "one two"}))
        .await;
    let rsp = gw
        .post(
            &gw.key,
            "/v1/responses",
            &json!({"model": "fake/listed-model", "input": "three four five",
                    "stream": true}),
        )
        .await;
    assert_eq!(rsp.status(), 200);
    let events = sse_events(rsp).await;
    let completed = events
        .iter()
        .find(|(_, v)| v["type"] == "response.completed")
        .map(|(_, v)| v["response"].clone())
        .expect("response.completed");
    // A 401 and a 400: they reach the handler and no provider.
    let rsp = gw
        .post(
            "sk-mn-wrong",
            "/v1/responses",
            &json!({"model": "fake/x", "input": "hi"}),
        )
        .await;
    assert_eq!(rsp.status(), 401);
    let rsp = gw
        .post(
            &gw.key,
            "/v1/responses",
            &json!({"model": "no-slash", "input": "hi"}),
        )
        .await;
    assert_eq!(rsp.status(), 400);
    // A chat completion.
    let rsp = gw
        .post(
            &gw.key,
            "/v1/chat/completions",
            &json!({"model": "fake/listed-model",
                    "messages": [{"role": "user", "content": "six"}]}),
        )
        .await;
    assert_eq!(rsp.status(), 200);
    let chat: Value = rsp.json().await.expect("chat json");
    // An upstream failure: one call and one retry, both 500.
    let rsp = gw
        .post(
            &gw.key,
            "/v1/responses",
            &json!({"model": "down/m", "input": "x"}),
        )
        .await;
    assert_eq!(rsp.status(), 502);
    // The alias: `down` fails twice, then fails over to `fake`.
    let smart = gw.create(json!({"model": "smart", "input": "seven"})).await;
    assert_eq!(smart["provider"], "fake");

    let after = scraped(&gw.base).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.get(name, labels) - before.get(name, labels)
    };
    let http = |op, class, provider| {
        [("operation", op), ("status_class", class), ("provider", provider)]
    };
    let mut table = Vec::new();
    for (labels, n) in [
        (http("response_create", "2xx", "fake"), 3.0),
        (http("response_create", "4xx", "none"), 2.0),
        (http("response_create", "5xx", "down"), 1.0),
        (http("chat_completion_create", "2xx", "fake"), 1.0),
    ] {
        table.push((
            "maniac_http_requests_total".to_string(),
            labels.to_vec(),
            delta("maniac_http_requests_total", &labels),
            n,
        ));
        table.push((
            "maniac_http_request_duration_seconds_count".to_string(),
            labels.to_vec(),
            delta("maniac_http_request_duration_seconds_count", &labels),
            n,
        ));
    }
    let provider = |p| [("provider", p)];
    for (name, labels, n) in [
        ("maniac_upstream_attempts_total", provider("fake"), 4.0),
        ("maniac_upstream_attempts_total", provider("down"), 4.0),
        ("maniac_upstream_retries_total", provider("down"), 2.0),
        ("maniac_upstream_retries_total", provider("fake"), 0.0),
        ("maniac_upstream_failovers_total", provider("down"), 1.0),
    ] {
        table.push((name.into(), labels.to_vec(), delta(name, &labels), n));
    }
    // The three stored responses (chat completions are not stored by
    // default), each written once.
    let stored = [("operation", "insert_response"), ("outcome", "ok")];
    let name = "maniac_store_operation_duration_seconds_count";
    table.push((name.into(), stored.to_vec(), delta(name, &stored), 3.0));
    let errors = [("provider", "down"), ("kind", "server_error")];
    table.push((
        "maniac_upstream_errors_total".into(),
        errors.to_vec(),
        delta("maniac_upstream_errors_total", &errors),
        4.0,
    ));
    // Tokens as the answers reported them.
    let (json_in, json_out) = usage(&json_answer);
    let (sse_in, sse_out) = usage(&completed);
    let chat_in = chat["usage"]["prompt_tokens"].as_f64().expect("prompt");
    let chat_out =
        chat["usage"]["completion_tokens"].as_f64().expect("completion");
    let (smart_in, smart_out) = usage(&smart);
    let genai = |model, kind: Option<&'static str>| {
        let mut l = vec![
            ("gen_ai_operation_name", "chat"),
            ("gen_ai_provider_name", "fake"),
            ("gen_ai_request_model", model),
        ];
        if let Some(k) = kind {
            l.push(("gen_ai_token_type", k));
        }
        l
    };
    for (model, kind, sum, count) in [
        ("fake/listed-model", "input", json_in + sse_in + chat_in, 3.0),
        ("fake/listed-model", "output", json_out + sse_out + chat_out, 3.0),
        ("smart", "input", smart_in, 1.0),
        ("smart", "output", smart_out, 1.0),
    ] {
        let l = genai(model, Some(kind));
        for (name, want) in [
            ("gen_ai_client_token_usage_sum", sum),
            ("gen_ai_client_token_usage_count", count),
        ] {
            table.push((name.into(), l.clone(), delta(name, &l), want));
        }
    }
    for (model, n) in [("fake/listed-model", 3.0), ("smart", 1.0)] {
        let mut l = genai(model, None);
        let name = "gen_ai_server_time_to_first_token_seconds_count";
        table.push((name.into(), l.clone(), delta(name, &l), n));
        l.push(("error_type", ""));
        let name = "gen_ai_client_operation_duration_seconds_count";
        table.push((name.into(), l.clone(), delta(name, &l), n));
    }
    let wrong: Vec<_> =
        table.iter().filter(|(_, _, got, want)| got != want).collect();
    assert!(
        wrong.is_empty(),
        "wrong deltas (name, labels, got, want):\n{}",
        table.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>().join("\n")
    );
    assert!(json_in > 0.0 && sse_out > 0.0 && chat_out > 0.0);
    // Organizations and keys are never labels.
    let (_, text) = scrape(&gw.base, None).await;
    for label in ["org=", "org_id=", "key_id=", "key="] {
        assert!(!text.contains(label), "{label} in:\n{text}");
    }
}

#[tokio::test]
async fn unlisted_models_are_labelled_other() {
    let Some(gw) = Gateway::start().await else { return };
    let v = gw
        .create(json!({"model": "fake/made-up-by-a-client", "input": "hi"}))
        .await;
    let (input, _) = usage(&v);
    let s = scraped(&gw.base).await;
    let l = [
        ("gen_ai_operation_name", "chat"),
        ("gen_ai_provider_name", "fake"),
        ("gen_ai_request_model", "other"),
        ("gen_ai_token_type", "input"),
    ];
    assert_eq!(s.get("gen_ai_client_token_usage_sum", &l), input);
    let (_, text) = scrape(&gw.base, None).await;
    assert!(!text.contains("made-up-by-a-client"), "{text}");
}

#[tokio::test]
async fn an_open_sse_stream_is_counted_until_it_ends() {
    let Some(gw) = Gateway::start().await else { return };
    let gauge = |s: &Scrape| s.get("maniac_sse_streams_open", &[]);
    assert_eq!(gauge(&scraped(&gw.base).await), 0.0);
    let rsp = gw
        .post(
            &gw.key,
            "/v1/responses",
            &json!({"model": "fake/listed-model", "input": "SLOW:300 a b",
                    "stream": true}),
        )
        .await;
    assert_eq!(rsp.status(), 200);
    // The headers are out: the stream is open.
    assert_eq!(gauge(&scraped(&gw.base).await), 1.0);
    let events = sse_events(rsp).await;
    assert!(events.iter().any(|(_, v)| v["type"] == "response.completed"));
    // The body is dropped by the server just after its last frame.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while gauge(&scraped(&gw.base).await) != 0.0 {
        assert!(tokio::time::Instant::now() < deadline, "stream still counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_separate_metrics_listener_serves_metrics_and_the_main_one_404s() {
    let Some(gw) = Gateway::start_with(Options {
        metrics: MetricsConfig {
            listen: Some("127.0.0.1:0".into()),
            token_env: None,
        },
        ..Options::default()
    })
    .await
    else {
        return;
    };
    let rsp = http().get(gw.url("/metrics")).send().await.expect("main");
    assert_eq!(rsp.status(), 404);
    let v: Value = rsp.json().await.expect("error json");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    let base = gw.metrics_base.clone().expect("metrics listener");
    let s = scraped(&base).await;
    let l = [
        ("operation", "metrics_view"),
        ("status_class", "4xx"),
        ("provider", "none"),
    ];
    assert_eq!(s.get("maniac_http_requests_total", &l), 1.0);
    let (status, text) = scrape(&base, None).await;
    assert_eq!(status, 200);
    assert!(
        text.contains("# TYPE maniac_http_requests_total counter"),
        "{text}"
    );
}

#[tokio::test]
async fn the_metrics_token_is_required_when_configured() {
    let Some(gw) = Gateway::start_with(Options {
        metrics: MetricsConfig {
            listen: None,
            token_env: Some(TOKEN_ENV.into()),
        },
        ..Options::default()
    })
    .await
    else {
        return;
    };
    let token = std::env::var(TOKEN_ENV).expect("set by .cargo/config.toml");
    for presented in [None, Some("mt-wrong"), Some(gw.key.as_str())] {
        let (status, text) = scrape(&gw.base, presented).await;
        assert_eq!(status, 401, "{presented:?}: {text}");
        let v: Value = serde_json::from_str(&text).expect("error json");
        assert_eq!(v["error"]["code"], "invalid_api_key", "{v}");
        assert!(!text.contains(&token));
    }
    let (status, text) = scrape(&gw.base, Some(&token)).await;
    assert_eq!(status, 200, "{text}");
    let s = Scrape::parse(&text);
    let l = [
        ("operation", "metrics_view"),
        ("status_class", "4xx"),
        ("provider", "none"),
    ];
    assert_eq!(s.get("maniac_http_requests_total", &l), 3.0);
}

#[tokio::test]
async fn a_metrics_token_variable_that_is_not_set_stops_the_start() {
    let Some(db) = TestDb::create().await else { return };
    let up = FakeUpstream::start().await;
    let file = maniac_tests::harness::file_config(
        &up.base_url(),
        &Options {
            metrics: MetricsConfig {
                listen: None,
                token_env: Some("MANIAC_TEST_METRICS_TOKEN_UNSET".into()),
            },
            ..Options::default()
        },
    );
    let started =
        maniac_server::server::start(maniac_server::server::ServeOptions {
            listen: "127.0.0.1:0".parse().expect("addr"),
            database_url: db.url.clone(),
            file,
            internal_key: None,
        })
        .await;
    let Err(e) = started else { panic!("started without its token") };
    assert!(e.to_string().contains("MANIAC_TEST_METRICS_TOKEN_UNSET"), "{e}");
}

/// The JSON access lines of a log.
fn access_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "maniac::access")
        .collect()
}

#[tokio::test]
async fn the_access_log_has_a_json_line_for_a_401_and_never_the_key() {
    let Some(db) = TestDb::create().await else { return };
    let up = FakeUpstream::start().await;
    let dir = std::env::temp_dir().join(format!(
        "maniac-access-{}-{}",
        std::process::id(),
        maniac_server::ids::random_hex(4)
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = write_config(&dir, &up.base_url(), "models = [\"m\"]\n");
    let mut gw = Maniac::serve(&db.url, &cfg, &[("MANIAC_LOG_FORMAT", "json")]);
    let key = gw.bootstrap_key.clone().expect("key");
    let wrong = "sk-mn-a-wrong-key-that-must-not-be-logged";
    let rsp = http()
        .post(format!("{}/v1/responses", gw.base))
        .bearer_auth(wrong)
        .json(&json!({"model": "fake/m", "input": "hi"}))
        .send()
        .await
        .expect("401");
    assert_eq!(rsp.status(), 401);
    let rejected_id =
        rsp.headers()["x-request-id"].to_str().expect("id").to_string();
    let rsp = http()
        .post(format!("{}/v1/responses", gw.base))
        .bearer_auth(&key)
        .json(&json!({"model": "fake/m", "input": "one two three"}))
        .send()
        .await
        .expect("200");
    let served_id =
        rsp.headers()["x-request-id"].to_str().expect("id").to_string();
    let answer: Value = rsp.json().await.expect("json");
    // The log is flushed at exit.
    assert_eq!(gw.terminate(Duration::from_secs(20)), Some(0));
    let log = gw.log();
    let lines = access_lines(&log);
    let line = |id: &str| {
        lines
            .iter()
            .find(|l| l["request_id"] == id)
            .unwrap_or_else(|| panic!("no access line for {id}:\n{log}"))
            .clone()
    };
    let rejected = line(&rejected_id);
    assert_eq!(rejected["status"], 401, "{rejected}");
    assert_eq!(rejected["method"], "POST");
    assert_eq!(rejected["operation"], "response_create");
    assert!(rejected["duration_ms"].as_f64().is_some(), "{rejected}");
    assert!(rejected.get("org").is_none(), "{rejected}");
    let served = line(&served_id);
    assert_eq!(served["status"], 200, "{served}");
    assert_eq!(served["model"], "fake/m");
    assert_eq!(served["provider"], "fake");
    assert_eq!(served["id"], answer["id"]);
    assert_eq!(served["input_tokens"], answer["usage"]["input_tokens"]);
    assert_eq!(served["output_tokens"], answer["usage"]["output_tokens"]);
    assert_eq!(served["streamed"], false);
    assert!(served["org"].as_str().is_some_and(|o| !o.is_empty()));
    assert!(served["key_id"].as_str().is_some_and(|k| !k.is_empty()));
    assert!(served["ttft_ms"].as_f64().is_some(), "{served}");
    assert!(!log.contains(wrong), "the presented key is in the log");
    // (The bootstrap key is printed once on stdout; no log line has it.)
    let log_lines: Vec<&str> =
        log.lines().filter(|l| l.starts_with('{')).collect();
    assert!(log_lines.len() >= 4, "{log}");
    assert!(
        log_lines.iter().all(|l| !l.contains(&key)),
        "the caller's key is in the log"
    );
    let _ = std::fs::remove_dir_all(dir);
}
