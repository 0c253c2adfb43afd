//! Losing the database: clear 503s in the OpenAI shape while it is away,
//! and recovery without a restart when it returns. A TCP proxy in front of
//! PostgreSQL is cut and restored. Skipped on SQLite (an embedded file
//! cannot go away).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use maniac_server::config::DatabaseConfig;
use maniac_server::server::{self, ServeOptions};
use maniac_tests::harness::{Options, TestDb, backend, file_config, http};
use maniac_tests::upstream::FakeUpstream;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Forwards 127.0.0.1:PORT to PostgreSQL until cut; while cut it refuses
/// new connections and drops the open ones.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    cut_now: Arc<Notify>,
}

impl Proxy {
    async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let cut_now = Arc::new(Notify::new());
        let (c, n) = (cut.clone(), cut_now.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if c.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let n = n.clone();
                tokio::spawn(async move {
                    let Ok(mut server) =
                        TcpStream::connect("127.0.0.1:5432").await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = n.notified() => {}
                    }
                });
            }
        });
        Proxy { port, cut, cut_now }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.cut_now.notify_waiters();
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_outage_gives_503_and_recovers_without_restart() {
    if backend() != "postgres" {
        eprintln!(
            "skipped: the database outage test needs MANIAC_TEST_BACKEND=postgres"
        );
        return;
    }
    let Some(db) = TestDb::create().await else { return };
    let proxy = Proxy::start().await;
    let name = db.url.rsplit('/').next().unwrap().to_string();
    let url = format!("postgres://postgres@127.0.0.1:{}/{name}", proxy.port);
    let upstream = FakeUpstream::start().await;
    let mut file = file_config(&upstream.base_url(), &Options::default());
    file.database = DatabaseConfig {
        max_connections: Some(4),
        acquire_timeout_ms: Some(1000),
        statement_timeout_ms: Some(2000),
        sqlite_synchronous: None,
    };
    let running = server::start(ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: url,
        file,
        internal_key: None,
    })
    .await
    .unwrap();
    let base = format!("http://{}", running.addr);
    let key = running.bootstrap_key.clone().unwrap();
    let client = http();
    let stored: Value = client
        .post(format!("{base}/v1/responses"))
        .bearer_auth(&key)
        .json(&json!({"model": "echo/m", "input": "before the outage"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = stored["id"].as_str().unwrap().to_string();

    proxy.cut();
    // Past the key cache's lifetime, every path needs the database.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for _ in 0..3 {
        let t0 = Instant::now();
        let rsp = client
            .get(format!("{base}/v1/responses/{id}"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        let status = rsp.status();
        let body = rsp.text().await.unwrap();
        assert_eq!(
            status, 503,
            "a clear 503 while the database is away: {body}"
        );
        let e: Value = serde_json::from_str(&body).unwrap();
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "answered in bounded time"
        );
        assert_eq!(e["error"]["type"], "server_error");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("temporarily unavailable"),
            "{e}"
        );
        let rsp = client
            .post(format!("{base}/v1/responses"))
            .bearer_auth(&key)
            .json(&json!({"model": "echo/m", "input": "during"}))
            .send()
            .await
            .unwrap();
        assert_eq!(rsp.status(), 503);
        // A token that is not key-shaped is refused without the database:
        // a flood of them costs no query.
        let rsp = client
            .get(format!("{base}/v1/responses/{id}"))
            .bearer_auth("sk-random-garbage-token")
            .send()
            .await
            .unwrap();
        assert_eq!(rsp.status(), 401);
    }
    // Liveness stays up (no restart of every replica); readiness is down,
    // in the OpenAI error shape.
    let live = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let e: Value = ready.json().await.unwrap();
    assert_eq!(e["error"]["code"], "service_unavailable", "{e}");
    assert_eq!(e["error"]["type"], "server_error", "{e}");

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rsp = client
            .get(format!("{base}/v1/responses/{id}"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        if rsp.status() == 200 {
            let v: Value = rsp.json().await.unwrap();
            assert_eq!(v["id"], id.as_str());
            break;
        }
        assert_eq!(rsp.status(), 503);
        assert!(
            Instant::now() < deadline,
            "the gateway did not recover after the database returned"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rsp = client
        .post(format!("{base}/v1/responses"))
        .bearer_auth(&key)
        .json(&json!({"model": "echo/m", "input": "after"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 200);
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "ready again once the database is back");
    running.shutdown().await;
}
