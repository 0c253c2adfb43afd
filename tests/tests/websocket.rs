//! End-to-end: WebSocket mode (`GET /v1/responses` upgraded), over a real
//! WebSocket on 127.0.0.1 against a real gateway and fake upstream.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use maniac_tests::gateway;
use maniac_tests::harness::*;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The handshake request for `key` (None: no Authorization header).
fn handshake(
    gw: &Gateway,
    key: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let url = gw.url("/v1/responses").replacen("http://", "ws://", 1);
    let mut req = url.into_client_request().unwrap();
    if let Some(k) = key {
        req.headers_mut()
            .insert("authorization", format!("Bearer {k}").parse().unwrap());
    }
    req
}

async fn connect(gw: &Gateway) -> Ws {
    let (ws, rsp) = connect_async(handshake(gw, Some(&gw.key))).await.unwrap();
    assert_eq!(rsp.status(), 101);
    ws
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// The next JSON text frame (pings are skipped; tungstenite answers them).
async fn recv(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("no frame within 10 s")
            .expect("connection ended")
            .expect("connection failed");
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

fn is_terminal(v: &Value) -> bool {
    matches!(
        v["type"].as_str(),
        Some(
            "response.completed"
                | "response.incomplete"
                | "response.failed"
                | "error"
        )
    )
}

/// Frames of one turn, up to and including its terminal event.
async fn turn(ws: &mut Ws) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let v = recv(ws).await;
        let end = is_terminal(&v);
        out.push(v);
        if end {
            return out;
        }
    }
}

fn kinds(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .map(|v| v["type"].as_str().unwrap_or("").to_string())
        .collect()
}

fn text_of(r: &Value) -> String {
    let mut s = String::new();
    for item in r["output"].as_array().into_iter().flatten() {
        for part in item["content"].as_array().into_iter().flatten() {
            s.push_str(part["text"].as_str().unwrap_or(""));
        }
    }
    s
}

fn create(input: &str) -> Value {
    json!({"type": "response.create", "model": "fake/m", "input": input})
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_error(v: &Value, code: &str) {
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert_eq!(v["code"], code, "{v}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(v["error"]["type"].is_string(), "{v}");
    assert!(v["error"].get("param").is_some(), "{v}");
}

#[tokio::test]
async fn bad_or_missing_key_is_401_before_upgrade() {
    let gw = gateway!();
    for key in [Some("sk-mn-wrong"), None] {
        match connect_async(handshake(&gw, key)).await {
            Err(WsError::Http(rsp)) => {
                assert_eq!(rsp.status(), 401);
                let body: Value =
                    serde_json::from_slice(rsp.body().as_deref().unwrap())
                        .unwrap();
                let e = &body["error"];
                assert_eq!(e["type"], "invalid_request_error");
                assert!(e["message"].is_string());
                assert!(e.get("param").is_some() && e.get("code").is_some());
            }
            other => panic!("expected a 401, got {:?}", other.map(|r| r.1)),
        }
    }
}

#[tokio::test]
async fn turn_frames_equal_the_sse_event_sequence() {
    let gw = gateway!();
    let rsp = gw
        .post(
            &gw.key,
            "/v1/responses",
            &json!({"model": "fake/m", "input": "one two three", "stream": true}),
        )
        .await;
    let sse = sse_events(rsp).await;
    let mut ws = connect(&gw).await;
    // `stream` and `background` are transport fields: ignored.
    let mut body = create("one two three");
    body["stream"] = json!(false);
    body["background"] = json!(true);
    send(&mut ws, body).await;
    let frames = turn(&mut ws).await;
    assert_eq!(kinds(&frames), types(&sse));
    for (i, v) in frames.iter().enumerate() {
        assert_eq!(v["sequence_number"], i as i64, "{v}");
    }
    let done = &frames.last().unwrap()["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["background"], false);
    assert_eq!(text_of(done), "You said: one two three");
}

#[tokio::test]
async fn turns_follow_each_other_on_one_connection() {
    let gw = gateway!();
    let mut ws = connect(&gw).await;
    for i in 0..4 {
        send(&mut ws, create(&format!("turn {i}"))).await;
        let frames = turn(&mut ws).await;
        assert_eq!(frames[0]["type"], "response.created");
        assert_eq!(frames[0]["sequence_number"], 0);
        let done = frames.last().unwrap();
        assert_eq!(done["type"], "response.completed");
        assert_eq!(text_of(&done["response"]), format!("You said: turn {i}"));
    }
}

#[tokio::test]
async fn second_create_while_one_runs_is_an_error_and_the_first_completes() {
    let gw = gateway!();
    let mut ws = connect(&gw).await;
    send(&mut ws, create("SLOW:100 WORDS:5")).await;
    let first = recv(&mut ws).await;
    assert_eq!(first["type"], "response.created");
    let id = first["response"]["id"].clone();
    send(&mut ws, create("other")).await;
    let mut frames = vec![first];
    let mut refused = 0;
    loop {
        let v = recv(&mut ws).await;
        if v["type"] == "error" {
            assert_error(&v, "response_already_in_flight");
            refused += 1;
            continue;
        }
        let end = is_terminal(&v);
        frames.push(v);
        if end {
            break;
        }
    }
    assert_eq!(refused, 1);
    let done = frames.last().unwrap();
    assert_eq!(done["type"], "response.completed");
    assert_eq!(done["response"]["id"], id);
    assert_eq!(text_of(&done["response"]), "w0 w1 w2 w3 w4");
    for (i, v) in frames.iter().enumerate() {
        assert_eq!(v["sequence_number"], i as i64);
    }
}

#[tokio::test]
async fn tools_malformed_and_unknown_frames_are_error_events() {
    let gw = gateway!();
    let mut ws = connect(&gw).await;
    let mut with_tools = create("hi");
    with_tools["tools"] =
        json!([{"type": "function", "name": "f", "parameters": {}}]);
    send(&mut ws, with_tools).await;
    let e = recv(&mut ws).await;
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["param"], "tools", "{e}");
    ws.send(Message::text("{not json")).await.unwrap();
    assert_error(&recv(&mut ws).await, "invalid_json");
    send(&mut ws, json!({"type": "response.steer", "input": "x"})).await;
    let e = recv(&mut ws).await;
    assert_error(&e, "unsupported_event_type");
    assert!(e["error"]["message"].as_str().unwrap().contains("response.steer"));
    let mut unknown = create("hi");
    unknown["bogus"] = json!(1);
    send(&mut ws, unknown).await;
    let e = recv(&mut ws).await;
    assert_error(&e, "unknown_parameter");
    assert_eq!(e["error"]["param"], "bogus");
    // The connection still serves turns.
    send(&mut ws, create("still here")).await;
    let done = turn(&mut ws).await.pop().unwrap();
    assert_eq!(done["type"], "response.completed");
    assert_eq!(text_of(&done["response"]), "You said: still here");
}

#[tokio::test]
async fn store_false_continuation_is_connection_local() {
    let gw = gateway!();
    let mut ws = connect(&gw).await;
    let mut first = create("alpha");
    first["store"] = json!(false);
    first["model"] = json!("echo/m");
    send(&mut ws, first).await;
    let done = turn(&mut ws).await.pop().unwrap();
    let id = done["response"]["id"].as_str().unwrap().to_string();
    // Not in the database.
    assert_eq!(
        gw.get(&gw.key, &format!("/v1/responses/{id}")).await.status(),
        404
    );
    let next = json!({"type": "response.create", "model": "fake/m",
        "store": false, "previous_response_id": id, "input": "beta"});
    send(&mut ws, next.clone()).await;
    let done = turn(&mut ws).await.pop().unwrap();
    assert_eq!(done["type"], "response.completed", "{done}");
    assert_eq!(done["response"]["previous_response_id"], id.as_str());
    // The upstream saw the whole transcript: alpha, its answer, beta.
    let req = gw.upstream.requests().last().unwrap().body.clone();
    let msgs = req["messages"].as_array().unwrap();
    let texts: Vec<String> =
        msgs.iter().map(|m| m["content"].to_string()).collect();
    assert_eq!(msgs.len(), 3, "{texts:?}");
    assert!(
        texts[0].contains("alpha") && texts[2].contains("beta"),
        "{texts:?}"
    );
    // On another connection the id is unknown; that connection stays usable.
    let mut other = connect(&gw).await;
    send(&mut other, next).await;
    let e = recv(&mut other).await;
    assert_error(&e, "previous_response_not_found");
    // A run-less error carries the status the same error has over HTTP.
    assert_eq!(e["status"], 400, "{e}");
    send(&mut other, create("fine")).await;
    assert_eq!(
        turn(&mut other).await.pop().unwrap()["type"],
        "response.completed"
    );
}

#[tokio::test]
async fn failed_continuation_evicts_the_cached_response() {
    let gw = gateway!();
    let mut ws = connect(&gw).await;
    let mut first = create("alpha");
    first["store"] = json!(false);
    send(&mut ws, first).await;
    let id = turn(&mut ws).await.pop().unwrap()["response"]["id"].clone();
    let mut bad = json!({"type": "response.create", "model": "fake/m",
        "store": false, "previous_response_id": id, "input": "x"});
    bad["temperature"] = json!(9);
    send(&mut ws, bad).await;
    assert_eq!(recv(&mut ws).await["type"], "error");
    let retry = json!({"type": "response.create", "model": "fake/m",
        "store": false, "previous_response_id": id, "input": "x"});
    send(&mut ws, retry).await;
    assert_error(&recv(&mut ws).await, "previous_response_not_found");
}

#[tokio::test]
async fn a_continuation_frame_that_does_not_parse_evicts_too() {
    let gw = gateway!();
    let mut ws = connect(&gw).await;
    let mut first = create("alpha");
    first["store"] = json!(false);
    send(&mut ws, first).await;
    let id = turn(&mut ws).await.pop().unwrap()["response"]["id"].clone();
    // An input item this server does not take fails the frame itself.
    let bad = json!({"type": "response.create", "model": "fake/m",
        "store": false, "previous_response_id": id,
        "input": [{"type": "function_call_output", "call_id": "call_x",
                   "output": "no such call"}]});
    send(&mut ws, bad).await;
    let e = recv(&mut ws).await;
    assert_eq!(e["type"], "error", "{e}");
    assert_eq!(e["status"], 400, "{e}");
    let retry = json!({"type": "response.create", "model": "fake/m",
        "store": false, "previous_response_id": id, "input": "x"});
    send(&mut ws, retry).await;
    assert_error(&recv(&mut ws).await, "previous_response_not_found");
    // A rejected frame naming another id leaves the cache alone.
    let mut fresh = create("beta");
    fresh["store"] = json!(false);
    send(&mut ws, fresh).await;
    let id = turn(&mut ws).await.pop().unwrap()["response"]["id"].clone();
    send(
        &mut ws,
        json!({"type": "response.create", "model": "fake/m",
        "previous_response_id": "resp_other", "bogus": 1}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["type"], "error");
    send(
        &mut ws,
        json!({"type": "response.create", "model": "fake/m",
        "store": false, "previous_response_id": id, "input": "gamma"}),
    )
    .await;
    assert_eq!(
        turn(&mut ws).await.pop().unwrap()["type"],
        "response.completed"
    );
}

#[tokio::test]
async fn stored_responses_chain_across_connections() {
    let gw = gateway!();
    let mut ws = connect(&gw).await;
    send(&mut ws, create("first")).await;
    let done = turn(&mut ws).await.pop().unwrap();
    let id = done["response"]["id"].as_str().unwrap().to_string();
    drop(ws);
    let stored = gw.get(&gw.key, &format!("/v1/responses/{id}")).await;
    assert_eq!(stored.status(), 200);
    let mut other = connect(&gw).await;
    send(
        &mut other,
        json!({"type": "response.create", "model": "fake/m",
        "previous_response_id": id, "input": "second"}),
    )
    .await;
    let done = turn(&mut other).await.pop().unwrap();
    assert_eq!(done["type"], "response.completed", "{done}");
    let req = gw.upstream.requests().last().unwrap().body.clone();
    assert_eq!(req["messages"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn generate_false_warms_without_a_model_call() {
    let gw = gateway!();
    let mut ws = connect(&gw).await;
    let mut warm = create("context");
    warm["generate"] = json!(false);
    warm["store"] = json!(false);
    send(&mut ws, warm).await;
    let frames = turn(&mut ws).await;
    assert_eq!(
        kinds(&frames),
        ["response.created", "response.in_progress", "response.completed"]
    );
    let done = &frames[2]["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"], json!([]));
    assert_eq!(gw.upstream.request_count(), 0);
    let id = done["id"].clone();
    send(
        &mut ws,
        json!({"type": "response.create", "model": "fake/m",
        "store": false, "previous_response_id": id, "input": "go"}),
    )
    .await;
    let done = turn(&mut ws).await.pop().unwrap();
    assert_eq!(done["type"], "response.completed");
    let req = gw.upstream.requests().last().unwrap().body.clone();
    assert_eq!(req["messages"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn upstream_failure_mid_turn_is_a_terminal_error_event() {
    let gw = gateway!();
    let mut ws = connect(&gw).await;
    send(&mut ws, create("FAULT:reset WORDS:20")).await;
    let frames = turn(&mut ws).await;
    let last = frames.last().unwrap();
    assert_eq!(last["type"], "error", "{last}");
    assert_eq!(last["sequence_number"], frames.len() as i64 - 1);
    // A failure before the first event is an error event too.
    send(&mut ws, create("FAULT:400")).await;
    assert_eq!(recv(&mut ws).await["type"], "error");
    send(&mut ws, create("ok")).await;
    assert_eq!(
        turn(&mut ws).await.pop().unwrap()["type"],
        "response.completed"
    );
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_call() {
    let gw = gateway!();
    let mut ws = connect(&gw).await;
    send(&mut ws, create("SLOW:200 WORDS:100")).await;
    assert_eq!(recv(&mut ws).await["type"], "response.created");
    wait_for("upstream stream never opened", || gw.upstream.open_streams() > 0)
        .await;
    drop(ws);
    wait_for("upstream still streaming after the client left", || {
        gw.upstream.open_streams() == 0
    })
    .await;
}

#[tokio::test]
async fn connection_age_limit_closes_with_an_error_event() {
    let gw = gateway!(Options {
        websocket_max_connection_secs: Some(1),
        ..Options::default()
    });
    let mut ws = connect(&gw).await;
    let e = recv(&mut ws).await;
    assert_error(&e, "websocket_connection_limit_reached");
    loop {
        match ws.next().await {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
            Some(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn pings_are_answered() {
    let gw = gateway!();
    let mut ws = connect(&gw).await;
    ws.send(Message::Ping(b"hello"[..].into())).await.unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("no pong within 5 s")
        .unwrap()
        .unwrap();
    assert_eq!(pong, Message::Pong(b"hello"[..].into()));
}

#[tokio::test]
async fn shutdown_closes_connections_after_the_running_turn() {
    let gw = gateway!();
    let mut ws = connect(&gw).await;
    send(&mut ws, create("SLOW:50 WORDS:10")).await;
    assert_eq!(recv(&mut ws).await["type"], "response.created");
    let stopping = tokio::spawn(gw.stop());
    let last = turn(&mut ws).await.pop().unwrap();
    assert_eq!(last["type"], "response.completed", "{last}");
    assert_eq!(text_of(&last["response"]), "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9");
    loop {
        match ws.next().await {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
            Some(Ok(_)) => continue,
        }
    }
    stopping.await.unwrap();
}

#[tokio::test]
async fn an_idle_connection_is_pinged() {
    let gw = gateway!(Options {
        websocket_ping_interval_secs: Some(1),
        ..Options::default()
    });
    let mut ws = connect(&gw).await;
    let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("no ping within 5 s")
        .unwrap()
        .unwrap();
    assert!(matches!(frame, Message::Ping(_)), "{frame:?}");
    // Still serving after the ping.
    send(&mut ws, create("after ping")).await;
    let done = turn(&mut ws).await.pop().unwrap();
    assert_eq!(done["type"], "response.completed");
}
