//! Upstream error text never reaches clients: every upstream failure —
//! an error status before the answer, an error inside a 200 stream — is
//! answered in the gateway's own words plus the upstream's status and
//! code, in every mode. The fake upstream's messages name the operator's
//! upstream organization, a key-looking string and (on 401) the key it
//! got; none of it may show. One row per fault × mode, the table printed
//! when a row fails.

use std::time::Duration;

use maniac_server::providers::ProviderConfig;
use maniac_server::providers::openai_chat::ChatConfig;
use maniac_server::routing::RoutingConfig;
use maniac_tests::gateway;
use maniac_tests::harness::{Gateway, Options, wait_terminal};
use maniac_tests::upstream::{FakeUpstream, MID_STREAM_MESSAGE};
use serde_json::{Value, json};

/// The upstream key of provider `keyed` (from `.cargo/config.toml`).
const KEY_ENV: &str = "MANIAC_TEST_UPSTREAM_KEY";

/// Text of the fake's messages that must never reach a client.
fn forbidden() -> Vec<String> {
    let key = std::env::var(KEY_ENV).expect("set in .cargo/config.toml");
    [
        "org-acme-internal",
        "sk-proj-leak",
        "exploded",
        "bad upstream request",
        "rate limit reached",
        "Incorrect API key",
        MID_STREAM_MESSAGE,
        &key,
    ]
    .map(str::to_string)
    .to_vec()
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Json,
    Sse,
    Background,
    ChatJson,
    ChatSse,
}

impl Mode {
    fn streams(self) -> bool {
        matches!(self, Mode::Sse | Mode::Background | Mode::ChatSse)
    }
}

/// Sends `input` to provider `keyed` in `mode`; returns the status and
/// everything the client got (for a background run: the final object).
async fn ask(gw: &Gateway, mode: Mode, input: &str) -> (u16, String) {
    let model = "keyed/m";
    let messages = json!([{"role": "user", "content": input}]);
    let (path, body) = match mode {
        Mode::Json => {
            ("/v1/responses", json!({"model": model, "input": input}))
        }
        Mode::Sse => (
            "/v1/responses",
            json!({"model": model, "input": input, "stream": true}),
        ),
        Mode::Background => (
            "/v1/responses",
            json!({"model": model, "input": input, "background": true}),
        ),
        Mode::ChatJson => (
            "/v1/chat/completions",
            json!({"model": model, "messages": messages}),
        ),
        Mode::ChatSse => (
            "/v1/chat/completions",
            json!({"model": model, "messages": messages, "stream": true}),
        ),
    };
    let rsp = gw.post(&gw.key, path, &body).await;
    let status = rsp.status().as_u16();
    let text = rsp.text().await.unwrap();
    if let Mode::Background = mode {
        let queued: Value = serde_json::from_str(&text).unwrap();
        let id = queued["id"].as_str().unwrap();
        let done =
            wait_terminal(gw, &gw.key, id, Duration::from_secs(20)).await;
        return (status, done.to_string());
    }
    (status, text)
}

#[tokio::test]
async fn upstream_error_text_never_reaches_the_client() {
    let up = FakeUpstream::start().await;
    let o = Options {
        extra_providers: vec![(
            "keyed".to_string(),
            ProviderConfig::OpenAiChat(ChatConfig {
                api_key_env: Some(KEY_ENV.into()),
                ..ChatConfig::at(up.base_url())
            }),
        )],
        // Each row is one upstream call: no retries, no breaker, no key
        // cooldown carried into the next row.
        routing: RoutingConfig {
            max_retries: Some(0),
            breaker_failures: Some(1_000),
            key_cooldown_secs: Some(0),
            ..RoutingConfig::default()
        },
        ..Options::default()
    };
    let gw = gateway!(o);
    let modes = [
        Mode::Json,
        Mode::Sse,
        Mode::Background,
        Mode::ChatJson,
        Mode::ChatSse,
    ];
    // (marker, status before the answer, what our message says)
    let faults = [
        ("FAULT:500", 502, "`keyed` answered 500 (code: server_error)."),
        (
            "FAULT:400",
            400,
            "`keyed` rejected the request: it answered 400 \
             (code: invalid_request_error).",
        ),
        (
            "FAULT:401",
            502,
            "`keyed` rejected the gateway's credentials: it answered 401 \
             (code: invalid_api_key).",
        ),
        (
            "FAULT:429",
            429,
            "`keyed` is rate limiting requests: it answered 429 \
             (code: rate_limit_exceeded).",
        ),
    ];
    let forbidden = forbidden();
    let mut table = Vec::new();
    let mut failed = false;
    for mode in modes {
        let mut rows: Vec<(&str, u16, String)> = faults
            .iter()
            .map(|(m, st, said)| (*m, *st, said.to_string()))
            .collect();
        // An error chunk inside a 200 stream; without streaming the fake
        // answers it as a 500 with the same code.
        rows.push(if mode.streams() {
            (
                "FAULT:midstream",
                200,
                "`keyed` reported an error mid-stream (code: engine_overloaded)."
                    .into(),
            )
        } else {
            (
                "FAULT:midstream",
                502,
                "`keyed` answered 500 (code: engine_overloaded).".into(),
            )
        });
        for (marker, want_status, said) in rows {
            let (status, text) = ask(&gw, mode, &format!("{marker} hi")).await;
            let want_status = match mode {
                // Queued at once; the failure is in the final object.
                Mode::Background => 200,
                _ => want_status,
            };
            let leaked: Vec<&String> = forbidden
                .iter()
                .filter(|f| text.contains(f.as_str()))
                .collect();
            let ok = status == want_status
                && text.contains(&said)
                && leaked.is_empty();
            failed |= !ok;
            table.push(format!(
                "{:<10} {:<16} {status} (want {want_status}) {} {}",
                format!("{mode:?}"),
                marker,
                if text.contains(&said) { "said" } else { "NOT SAID" },
                if leaked.is_empty() {
                    "no leak".to_string()
                } else {
                    format!("LEAKED {leaked:?}: {text}")
                },
            ));
        }
    }
    assert!(!failed, "\n{}", table.join("\n"));
    // The 401 row really did carry the key in the upstream's message.
    let key = std::env::var(KEY_ENV).unwrap();
    assert!(up.requests().iter().any(|r| {
        r.authorization.as_deref() == Some(&*format!("Bearer {key}"))
    }));
    gw.stop().await;
}
