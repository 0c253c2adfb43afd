//! Retries over real HTTP against a fake server on loopback, and the delay
//! arithmetic on its own.

use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::{backoff, server_delay, should_retry};
use crate::{
    Client, ResponseExt, SdkError,
    test_support::{FakeServer, http, http_with, response_json, sse},
    types,
};

const ENVELOPE: &str = r#"{"error":{"message":"slow down","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}"#;

fn ok() -> String {
    http("200 OK", "application/json", &response_json("completed", "hi"))
}

fn rate_limited(header: &str, request_id: &str) -> String {
    http_with(
        "429 Too Many Requests",
        &[header, &format!("x-request-id: {request_id}")],
        "application/json",
        ENVELOPE,
    )
}

fn client(server: &FakeServer) -> Client {
    Client::with_key(&server.base, "mk_test").unwrap()
}

async fn view(client: &Client) -> Result<types::Response, SdkError> {
    Ok(client.response_view().response_id("resp_1").send().await?.into_inner())
}

fn request() -> types::builder::CreateResponse {
    types::CreateResponse::builder()
        .model("echo/test".to_string())
        .input(types::Input::from("Hi"))
}

#[tokio::test]
async fn retry_after_seconds_is_waited_then_the_call_succeeds() {
    let server =
        FakeServer::start(vec![rate_limited("retry-after: 1", "req_1"), ok()])
            .await;
    let started = Instant::now();
    let response = view(&client(&server)).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.output_text(), "hi");
    assert_eq!(server.requests(), 2);
    let arrivals = server.arrivals();
    let gap = arrivals[1] - arrivals[0];
    eprintln!("Retry-After: 1 -> 2 attempts, gap {gap:?}, total {elapsed:?}");
    assert!(gap >= Duration::from_secs(1), "{gap:?}");
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
}

#[tokio::test]
async fn retry_after_ms_is_honoured_and_the_body_is_sent_again() {
    let unavailable = http_with(
        "503 Service Unavailable",
        &["retry-after-ms: 250"],
        "application/json",
        ENVELOPE,
    );
    let server =
        FakeServer::start(vec![unavailable.clone(), unavailable, ok()]).await;
    let started = Instant::now();
    let response = client(&server)
        .response_create()
        .body(request())
        .send()
        .await
        .unwrap()
        .into_inner();
    let elapsed = started.elapsed();
    assert_eq!(response.id, "resp_1");
    assert_eq!(server.requests(), 3);
    eprintln!("retry-after-ms: 250 twice -> 3 attempts in {elapsed:?}");
    assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
}

#[tokio::test]
async fn gives_up_after_max_retries_with_the_last_answer() {
    let server = FakeServer::start(vec![
        rate_limited("retry-after-ms: 20", "req_1"),
        rate_limited("retry-after-ms: 20", "req_2"),
        rate_limited("retry-after-ms: 20", "req_3"),
        ok(),
    ])
    .await;
    let err = view(&client(&server)).await.unwrap_err();
    assert_eq!(server.requests(), 3, "1 attempt + 2 retries");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(429));
    assert_eq!(err.request_id(), Some("req_3"));
    assert_eq!(err.error_type(), Some("rate_limit_error"));
    assert_eq!(err.code(), Some("rate_limit_exceeded"));
}

#[tokio::test]
async fn max_retries_zero_does_not_retry_per_client_or_per_call() {
    let server =
        FakeServer::start(vec![rate_limited("retry-after-ms: 10", "a"), ok()])
            .await;
    let no_retries = Client::builder(&server.base)
        .api_key("mk_test")
        .max_retries(0)
        .build()
        .unwrap();
    let err = view(&no_retries).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(429));
    assert_eq!(server.requests(), 1);

    let server =
        FakeServer::start(vec![rate_limited("retry-after-ms: 10", "b"), ok()])
            .await;
    let err = view(&client(&server).with_max_retries(0)).await.unwrap_err();
    assert_eq!(err.request_id(), Some("b"));
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn bad_request_is_never_retried() {
    let invalid = http_with(
        "400 Bad Request",
        &["x-request-id: req_bad"],
        "application/json",
        r#"{"error":{"message":"temperature must be at most 2","type":"invalid_request_error","param":"temperature","code":"invalid_value"}}"#,
    );
    let server = FakeServer::start(vec![invalid, ok()]).await;
    let err = SdkError::from(
        client(&server)
            .with_max_retries(5)
            .response_create()
            .body(request())
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(server.requests(), 1);
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400));
    assert_eq!(err.param(), Some("temperature"));
    assert_eq!(err.code(), Some("invalid_value"));
    assert_eq!(err.error_type(), Some("invalid_request_error"));
    assert_eq!(err.request_id(), Some("req_bad"));
}

#[tokio::test]
async fn server_saying_x_should_retry_false_is_not_retried() {
    let failed = http_with(
        "500 Internal Server Error",
        &["x-should-retry: false"],
        "application/json",
        ENVELOPE,
    );
    let server = FakeServer::start(vec![failed, ok()]).await;
    let err = view(&client(&server)).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(500));
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn connection_error_is_retried_with_backoff() {
    // The first connection is closed without an answer.
    let server = FakeServer::start(vec![String::new(), ok()]).await;
    let started = Instant::now();
    view(&client(&server)).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(server.requests(), 2);
    eprintln!("connection closed -> 2 attempts in {elapsed:?}");
    // The first backoff is 0.5 s less up to a quarter of jitter.
    assert!(elapsed >= Duration::from_millis(375), "{elapsed:?}");
}

fn created_event() -> String {
    sse(
        "response.created",
        &format!(
            r#"{{"type":"response.created","sequence_number":0,"response":{}}}"#,
            response_json("in_progress", "")
        ),
    )
}

fn completed_event() -> String {
    sse(
        "response.completed",
        &format!(
            r#"{{"type":"response.completed","sequence_number":1,"response":{}}}"#,
            response_json("completed", "hi")
        ),
    )
}

#[tokio::test]
async fn stream_is_retried_until_its_answer_arrives() {
    let body = created_event() + &completed_event();
    let server = FakeServer::start(vec![
        rate_limited("retry-after-ms: 20", "req_1"),
        http_with(
            "200 OK",
            &["x-request-id: req_2"],
            "text/event-stream",
            &body,
        ),
    ])
    .await;
    let events = client(&server).create_stream(request()).await.unwrap();
    assert_eq!(events.request_id(), Some("req_2"));
    let response = events.final_response().await.unwrap().unwrap();
    assert_eq!(response.id, "resp_1");
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn stream_is_not_retried_after_its_first_event() {
    // Announces more bytes than it sends, then hangs up after one event.
    let first = created_event();
    let cut = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{first}",
        first.len() + 500
    );
    let whole = http("200 OK", "text/event-stream", &created_event());
    let server = FakeServer::start(vec![cut, whole]).await;
    let mut events = client(&server)
        .with_max_retries(5)
        .create_stream(request())
        .await
        .unwrap();
    let event = events.next().await.unwrap().unwrap();
    assert_eq!(event.type_name(), "response.created");
    let rest: Vec<_> = events.collect().await;
    assert!(
        rest.iter().any(|e| matches!(e, Err(SdkError::Transport(_)))),
        "the cut is reported: {rest:?}"
    );
    assert_eq!(server.requests(), 1);
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

#[test]
fn server_delay_reads_ms_seconds_and_dates() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let date = httpdate::fmt_http_date(now + Duration::from_secs(7));
    type Case<'a> = (&'a [(&'a str, &'a str)], Option<Duration>);
    let cases: &[Case] = &[
        (&[("retry-after-ms", "250")], Some(Duration::from_millis(250))),
        (
            &[("retry-after-ms", "100"), ("retry-after", "9")],
            Some(Duration::from_millis(100)),
        ),
        (&[("retry-after", "2")], Some(Duration::from_secs(2))),
        (&[("retry-after", "1.5")], Some(Duration::from_millis(1500))),
        (&[("retry-after", &date)], Some(Duration::from_secs(7))),
        (&[("retry-after", "61")], None),
        (&[("retry-after", "0")], None),
        (&[("retry-after", "-3")], None),
        (&[("retry-after", "soon")], None),
        (&[("retry-after", "1e300")], None),
        (
            &[("retry-after-ms", "junk"), ("retry-after", "3")],
            Some(Duration::from_secs(3)),
        ),
        (&[], None),
    ];
    for (pairs, want) in cases {
        let got = server_delay(&headers(pairs), now);
        assert_eq!(got, *want, "headers {pairs:?}");
    }
    let past = httpdate::fmt_http_date(now - Duration::from_secs(5));
    assert_eq!(server_delay(&headers(&[("retry-after", &past)]), now), None);
}

#[test]
fn backoff_doubles_from_half_a_second_up_to_eight_with_jitter() {
    for (retries, base_ms) in
        [(0, 500), (1, 1000), (2, 2000), (3, 4000), (4, 8000), (9, 8000)]
    {
        for _ in 0..50 {
            let delay = backoff(retries).as_millis();
            assert!(
                (base_ms * 3 / 4..=base_ms).contains(&delay),
                "retry {retries}: {delay} ms"
            );
        }
    }
    assert!(backoff(u32::MAX) <= Duration::from_secs(8));
}

#[test]
fn retryable_statuses() {
    let none = HeaderMap::new();
    for (status, retried) in [
        (400, false),
        (401, false),
        (404, false),
        (408, true),
        (409, true),
        (422, false),
        (429, true),
        (500, true),
        (502, true),
        (503, true),
    ] {
        let status = reqwest::StatusCode::from_u16(status).unwrap();
        assert_eq!(should_retry(status, &none), retried, "{status}");
    }
    let yes = headers(&[("x-should-retry", "true")]);
    assert!(should_retry(reqwest::StatusCode::BAD_REQUEST, &yes));
}
