//! Several real `maniac serve` processes on one PostgreSQL database: any
//! replica answers for any response, follows and cancels runs executing on
//! another, and recovers a killed replica's runs. Skipped on SQLite.

use std::time::{Duration, Instant};

use maniac_tests::harness::{TestDb, backend, http, parse_sse};
use maniac_tests::process::{Maniac, create_key, write_config};
use maniac_tests::upstream::FakeUpstream;
use serde_json::{Value, json};

const CONFIG: &str =
    "[background]\nworkers = 16\nlease_ms = 2000\npoll_ms = 200\n";

async fn setup(
    tag: &str,
) -> Option<(TestDb, FakeUpstream, std::path::PathBuf)> {
    if backend() != "postgres" {
        eprintln!(
            "skipped: multi-replica tests need MANIAC_TEST_BACKEND=postgres"
        );
        return None;
    }
    let db = TestDb::create().await?;
    let upstream = FakeUpstream::start().await;
    let dir = std::env::temp_dir()
        .join(format!("maniac-{tag}-{}", maniac_server::ids::random_hex(4)));
    std::fs::create_dir_all(&dir).unwrap();
    let config = write_config(&dir, &upstream.base_url(), CONFIG);
    Some((db, upstream, config))
}

async fn call(
    method: reqwest::Method,
    base: &str,
    key: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rb =
        http().request(method, format!("{base}{path}")).bearer_auth(key);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let rsp = rb.send().await.unwrap();
    let status = rsp.status().as_u16();
    (status, rsp.json().await.unwrap_or(Value::Null))
}

/// Reads a live SSE stream, recording when each event arrived.
async fn read_stream(url: String, key: String) -> Vec<(Instant, Value)> {
    let mut rsp = http().get(url).bearer_auth(key).send().await.unwrap();
    assert_eq!(rsp.status(), 200);
    let mut buf = String::new();
    let mut out = Vec::new();
    while let Some(chunk) = rsp.chunk().await.unwrap() {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            for (_, v) in parse_sse(&block) {
                out.push((Instant::now(), v));
            }
        }
    }
    out
}

fn runner<'a>(
    a: &'a Maniac,
    b: &'a Maniac,
    id: &str,
) -> Option<(&'a Maniac, &'a Maniac)> {
    let needle = format!("background run started response_id={id}");
    if a.log().contains(&needle) {
        Some((a, b))
    } else if b.log().contains(&needle) {
        Some((b, a))
    } else {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn any_replica_serves_follows_and_cancels_any_response() {
    let Some((db, upstream, config)) = setup("replicas").await else { return };
    let a = Maniac::serve(&db.url, &config, &[]);
    let b = Maniac::serve(&db.url, &config, &[]);
    let key = a.bootstrap_key.clone().expect("key from the first replica");
    assert!(b.bootstrap_key.is_none());
    use reqwest::Method;

    // Created on A; viewed, listed, chained and deleted on B.
    let (s, first) = call(
        Method::POST,
        &a.base,
        &key,
        "/v1/responses",
        Some(json!({"model": "fake/m", "input": "I am Ada"})),
    )
    .await;
    assert_eq!(s, 200);
    let id = first["id"].as_str().unwrap();
    let (s, got) =
        call(Method::GET, &b.base, &key, &format!("/v1/responses/{id}"), None)
            .await;
    assert_eq!((s, &got), (200, &first));
    let (s, items) = call(
        Method::GET,
        &b.base,
        &key,
        &format!("/v1/responses/{id}/input_items"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(items["data"][0]["content"][0]["text"], "I am Ada");
    let (s, second) = call(Method::POST, &b.base, &key, "/v1/responses", Some(json!({"model": "fake/m", "input": "who?", "previous_response_id": id}))).await;
    assert_eq!(s, 200);
    let msgs = &upstream.requests()[1].body["messages"];
    assert_eq!(msgs[0]["content"], "I am Ada");
    assert_eq!(msgs[1]["content"], "You said: I am Ada");
    let (s, _) = call(
        Method::DELETE,
        &b.base,
        &key,
        &format!("/v1/responses/{}", second["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call(
        Method::GET,
        &a.base,
        &key,
        &format!("/v1/responses/{}", second["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(s, 404);

    // A background run on one replica, followed and cancelled from the other.
    let (s, run) = call(Method::POST, &a.base, &key, "/v1/responses", Some(json!({"model": "fake/m", "input": "SLOW:50 WORDS:400", "background": true}))).await;
    assert_eq!(s, 200);
    let rid = run["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (here, there) = loop {
        if let Some(pair) = runner(&a, &b, &rid) {
            break pair;
        }
        assert!(Instant::now() < deadline, "nobody claimed the run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let local = tokio::spawn(read_stream(
        format!("{}/v1/responses/{rid}?stream=true", here.base),
        key.clone(),
    ));
    let remote = tokio::spawn(read_stream(
        format!("{}/v1/responses/{rid}?stream=true", there.base),
        key.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t0 = Instant::now();
    let (s, cancelled) = call(
        Method::POST,
        &there.base,
        &key,
        &format!("/v1/responses/{rid}/cancel"),
        None,
    )
    .await;
    let cancel_latency = t0.elapsed();
    assert_eq!(s, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let local = tokio::time::timeout(Duration::from_secs(10), local)
        .await
        .expect("local reader ends")
        .unwrap();
    let remote = tokio::time::timeout(Duration::from_secs(10), remote)
        .await
        .expect("remote reader ends")
        .unwrap();
    let seqs = |evs: &[(Instant, Value)]| {
        evs.iter()
            .map(|(_, v)| v["sequence_number"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        seqs(&local),
        seqs(&remote),
        "same events, same sequence numbers on both replicas"
    );
    assert_eq!(seqs(&remote), (0..remote.len() as i64).collect::<Vec<_>>());
    assert_eq!(remote.last().unwrap().1["response"]["status"], "cancelled");
    // Follow latency: how much later the remote replica delivered deltas.
    let mut lags: Vec<f64> = local
        .iter()
        .zip(&remote)
        .filter(|((_, v), _)| v["type"] == "response.output_text.delta")
        .map(|((tl, _), (tr, _))| {
            tr.saturating_duration_since(*tl).as_secs_f64() * 1000.0
        })
        .collect();
    lags.sort_by(f64::total_cmp);
    let p50 = lags.get(lags.len() / 2).copied().unwrap_or(0.0);
    let p99 = lags.get(lags.len() * 99 / 100).copied().unwrap_or(0.0);
    // Resume on the remote replica from a cursor.
    let text = http()
        .get(format!(
            "{}/v1/responses/{rid}?stream=true&starting_after=10",
            there.base
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let resumed = parse_sse(&text);
    assert_eq!(resumed[0].1["sequence_number"], 11);
    assert_eq!(resumed.len(), remote.len() - 11);
    eprintln!(
        "replicas: cross-replica cancel {:.1} ms; remote follow lag p50 {p50:.1} ms, p99 {p99:.1} ms over {} deltas",
        cancel_latency.as_secs_f64() * 1000.0,
        lags.len()
    );
    assert!(
        cancel_latency < Duration::from_secs(1),
        "cancel took {cancel_latency:?}"
    );

    // Revoking a key on the database reaches every replica within seconds.
    let other = create_key(&db.url, "revoke-me");
    for base in [&a.base, &b.base] {
        let (s, _) = call(
            Method::POST,
            base,
            &other,
            "/v1/responses",
            Some(json!({"model": "echo/m", "input": "x"})),
        )
        .await;
        assert_eq!(s, 200);
    }
    let listed =
        std::process::Command::new(maniac_tests::process::maniac_bin())
            .args(["keys", "list", "--database-url", &db.url])
            .output()
            .unwrap();
    let listing = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(!listing.contains(&other), "keys list never shows secrets");
    let key_id = listing
        .lines()
        .find(|l| l.contains("revoke-me"))
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_string();
    let out = std::process::Command::new(maniac_tests::process::maniac_bin())
        .args(["keys", "revoke", &key_id, "--database-url", &db.url])
        .output()
        .unwrap();
    assert!(out.status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    for base in [&a.base, &b.base] {
        loop {
            let (s, _) = call(
                Method::POST,
                base,
                &other,
                "/v1/responses",
                Some(json!({"model": "echo/m", "input": "x"})),
            )
            .await;
            if s == 401 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "revoked key still accepted by {base}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_replicas_runs_are_recovered_by_the_others() {
    let Some((db, upstream, config)) = setup("replica-kill").await else {
        return;
    };
    let mut a = Maniac::serve(&db.url, &config, &[]);
    let key = a.bootstrap_key.clone().unwrap();
    let n = 60;
    let mut ids = Vec::new();
    for i in 0..n {
        let (s, r) = call(reqwest::Method::POST, &a.base, &key, "/v1/responses", Some(json!({"model": "fake/m", "input": format!("rk-{i:03} SLOW:25 WORDS:20"), "background": true}))).await;
        assert_eq!(s, 200);
        ids.push(r["id"].as_str().unwrap().to_string());
    }
    let b = Maniac::serve(&db.url, &config, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while upstream.request_count() < 20 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.kill9();
    let t0 = Instant::now();
    let mut statuses = Vec::new();
    for id in &ids {
        loop {
            let (_, v) = call(
                reqwest::Method::GET,
                &b.base,
                &key,
                &format!("/v1/responses/{id}"),
                None,
            )
            .await;
            let s = v["status"].as_str().unwrap_or("").to_string();
            if s != "queued" && s != "in_progress" {
                statuses.push(v);
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "{id} stuck in {s}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut interrupted = 0;
    for (i, v) in statuses.iter().enumerate() {
        let seen = upstream.count_containing(&format!("rk-{i:03} SLOW"));
        match v["status"].as_str().unwrap() {
            "completed" => assert_eq!(seen, 1, "run {i} ran {seen} times"),
            "failed" => {
                interrupted += 1;
                assert!(seen <= 1);
                assert!(
                    v["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("interrupted")
                );
            }
            other => panic!("run {i}: {other}"),
        }
    }
    eprintln!(
        "replica kill: {n} runs, {interrupted} interrupted on the killed replica, the rest completed; all terminal {:.1}s after kill -9",
        t0.elapsed().as_secs_f64()
    );
}
