//! The real `maniac` binary: `kill -9` in the middle of 120 background
//! runs, graceful SIGTERM, and secrets kept out of answers and logs.

use std::time::{Duration, Instant};

use maniac_tests::harness::{TestDb, http, parse_sse};
use maniac_tests::process::{Maniac, write_config};
use maniac_tests::upstream::FakeUpstream;
use serde_json::{Value, json};

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "maniac-{tag}-{}-{}",
        std::process::id(),
        maniac_server::ids::random_hex(4)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn create(base: &str, key: &str, body: Value) -> Value {
    let rsp = http()
        .post(format!("{base}/v1/responses"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 200);
    rsp.json().await.unwrap()
}

async fn get(base: &str, key: &str, id: &str) -> Value {
    http()
        .get(format!("{base}/v1/responses/{id}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_all_terminal(
    base: &str,
    key: &str,
    ids: &[String],
    within: Duration,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    for id in ids {
        loop {
            let v = get(base, key, id).await;
            let s = v["status"].as_str().unwrap_or("").to_string();
            if s != "queued" && s != "in_progress" {
                out.push(v);
                break;
            }
            assert!(Instant::now() < deadline, "{id} stuck in {s}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_way_loses_and_duplicates_no_run() {
    let Some(db) = TestDb::create().await else { return };
    let upstream = FakeUpstream::start().await;
    let dir = temp_dir("crash");
    let config = write_config(
        &dir,
        &upstream.base_url(),
        "[background]\nworkers = 16\nlease_ms = 2000\npoll_ms = 100\n",
    );
    let mut first = Maniac::serve(&db.url, &config, &[]);
    let key = first.bootstrap_key.clone().expect("bootstrap key");
    let n = 120;
    let submits = (0..n).map(|i| {
        let (base, key) = (first.base.clone(), key.clone());
        async move { create(&base, &key, json!({"model": "fake/m", "input": format!("crash-run-{i:03} SLOW:25 WORDS:20"), "background": true})).await }
    });
    let ids: Vec<String> = futures::future::join_all(submits)
        .await
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    // Let roughly a third start, then kill the process outright.
    let deadline = Instant::now() + Duration::from_secs(20);
    while upstream.request_count() < 40 {
        assert!(Instant::now() < deadline, "runs never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill9();
    let seen_before_kill = upstream.request_count();
    assert!(seen_before_kill < n, "everything finished before the kill");

    let second = Maniac::serve(&db.url, &config, &[]);
    assert!(second.bootstrap_key.is_none(), "keys survive the restart");
    let t0 = Instant::now();
    let finals =
        wait_all_terminal(&second.base, &key, &ids, Duration::from_secs(60))
            .await;
    let recovery = t0.elapsed();
    let (mut completed, mut interrupted) = (0, 0);
    for (i, v) in finals.iter().enumerate() {
        let seen = upstream.count_containing(&format!("crash-run-{i:03} SLOW"));
        match v["status"].as_str().unwrap() {
            "completed" => {
                completed += 1;
                assert_eq!(
                    seen, 1,
                    "completed run {i} reached the upstream {seen} times"
                );
                assert_eq!(v["usage"]["output_tokens"], 20);
            }
            "failed" => {
                interrupted += 1;
                assert!(seen <= 1, "interrupted run {i} was retried");
                assert_eq!(v["error"]["code"], "server_error");
                assert!(
                    v["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("interrupted"),
                    "{v}"
                );
            }
            other => panic!("run {i} ended {other}: {v}"),
        }
    }
    assert_eq!(completed + interrupted, n);
    assert!(interrupted >= 1, "the kill interrupted no run");
    assert!(
        completed > seen_before_kill - interrupted,
        "queued runs completed after the restart"
    );
    // An interrupted run's log ends with a terminal event, with no gap.
    let failed_id =
        &ids[finals.iter().position(|v| v["status"] == "failed").unwrap()];
    let text = http()
        .get(format!("{}/v1/responses/{failed_id}?stream=true", second.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let evs = parse_sse(&text);
    assert_eq!(evs.last().unwrap().0, "error");
    for (j, (_, e)) in evs.iter().enumerate() {
        assert_eq!(e["sequence_number"], j as i64);
    }
    eprintln!(
        "crash test: {n} runs, {seen_before_kill} reached the upstream before kill -9, \
         {completed} completed, {interrupted} failed as interrupted, all terminal {:.1}s after restart",
        recovery.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_and_a_restart_keeps_queued_runs() {
    let Some(db) = TestDb::create().await else { return };
    let upstream = FakeUpstream::start().await;
    let dir = temp_dir("term");
    let config = write_config(
        &dir,
        &upstream.base_url(),
        "[background]\nworkers = 2\nlease_ms = 2000\npoll_ms = 100\nshutdown_grace_ms = 1500\n",
    );
    let mut first = Maniac::serve(&db.url, &config, &[]);
    let key = first.bootstrap_key.clone().unwrap();
    let quick = create(&first.base, &key, json!({"model": "fake/m", "input": "quick SLOW:20 WORDS:10", "background": true})).await;
    let hang = create(
        &first.base,
        &key,
        json!({"model": "fake/m", "input": "FAULT:hang", "background": true}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let queued = create(&first.base, &key, json!({"model": "fake/m", "input": "after restart", "background": true})).await;
    let t0 = Instant::now();
    let code = first.terminate(Duration::from_secs(20));
    assert_eq!(code, Some(0), "graceful exit:\n{}", first.log());
    assert!(t0.elapsed() < Duration::from_secs(10));
    let second = Maniac::serve(&db.url, &config, &[]);
    let ids =
        [quick, hang, queued].map(|v| v["id"].as_str().unwrap().to_string());
    let finals =
        wait_all_terminal(&second.base, &key, &ids, Duration::from_secs(30))
            .await;
    assert_eq!(
        finals[0]["status"], "completed",
        "the running run finished within the grace period"
    );
    assert_eq!(
        finals[1]["status"], "failed",
        "the stuck run was failed after the grace period"
    );
    assert!(
        finals[1]["error"]["message"].as_str().unwrap().contains("interrupted")
    );
    assert_eq!(
        finals[2]["status"], "completed",
        "the queued run survived the restart"
    );
    assert_eq!(upstream.count_containing("after restart"), 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_never_appear_in_answers_or_logs() {
    let Some(db) = TestDb::create().await else { return };
    let upstream = FakeUpstream::start().await;
    let dir = temp_dir("keys");
    let secret = "sk-upstream-SECRET-4242";
    let config = dir.join("maniac.toml");
    std::fs::write(
        &config,
        format!(
            "[providers.fake]\nkind = \"openai-chat\"\nbase_url = \"{}\"\napi_key_env = \"FAKE_UPSTREAM_KEY\"\n",
            upstream.base_url()
        ),
    )
    .unwrap();
    let gw = Maniac::serve(
        &db.url,
        &config,
        &[("FAKE_UPSTREAM_KEY", secret), ("MANIAC_LOG", "debug")],
    );
    let key = gw.bootstrap_key.clone().unwrap();
    let mut bodies = String::new();
    for input in ["hello", "FAULT:401", "FAULT:500", "FAULT:400", "FAULT:429"] {
        for stream in [false, true] {
            let rsp = http()
                .post(format!("{}/v1/responses", gw.base))
                .bearer_auth(&key)
                .json(&json!({"model": "fake/m", "input": input, "stream": stream}))
                .send()
                .await
                .unwrap();
            bodies.push_str(&rsp.text().await.unwrap());
        }
    }
    let rsp = http()
        .post(format!("{}/v1/responses", gw.base))
        .bearer_auth("sk-mn-not-a-real-key")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    bodies.push_str(&rsp.text().await.unwrap());
    // The upstream key is sent upstream...
    assert_eq!(
        upstream.requests()[0].authorization.as_deref(),
        Some(&*format!("Bearer {secret}"))
    );
    // ...and never shown to clients or written to the log; neither is ours.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = gw.log();
    assert!(
        log.contains("response create"),
        "the log has request lines:\n{log}"
    );
    for (what, text) in [("answers", &bodies), ("log", &log)] {
        assert!(!text.contains(secret), "upstream key in {what}");
        assert!(!text.contains("SECRET"), "upstream key fragment in {what}");
        assert!(
            !text.contains("sk-mn-not-a-real-key"),
            "presented key in {what}"
        );
    }
    // The log is useful at 3 a.m.: request ids, response ids, and the
    // model with its provider.
    assert!(
        log.contains("request_id=")
            && log.contains("response_id=resp_")
            && log.contains("model=fake/"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_piped_serve_writes_the_first_key_to_an_owner_only_file() {
    let Some(db) = TestDb::create().await else { return };
    let upstream = FakeUpstream::start().await;
    let dir = temp_dir("initial-key");
    let config = write_config(&dir, &upstream.base_url(), "");
    // Stdout is a pipe here: `Maniac::serve` reads the key from the file
    // (checking its mode is 0600) after the listening line.
    let gw = Maniac::serve(&db.url, &config, &[]);
    let key = gw.bootstrap_key.clone().expect("a key file");
    assert!(key.starts_with("sk-mn-"), "a gateway key");
    let file = if db.url.starts_with("sqlite:") {
        let db_file = db.url.trim_start_matches("sqlite://");
        std::path::Path::new(db_file).with_file_name("maniac-initial-key")
    } else {
        dir.join("maniac-initial-key")
    };
    assert!(file.exists(), "{} exists", file.display());
    let rsp = http()
        .post(format!("{}/v1/responses", gw.base))
        .bearer_auth(&key)
        .json(&json!({"model": "echo/m", "input": "first key"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 200, "the key in the file works");
    let log = gw.log();
    assert!(!log.contains(&key), "the key is in stdout or the log:\n{log}");
    assert!(
        log.contains(&file.display().to_string()),
        "the file's path is logged:\n{log}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
