//! The real `maniac` binary with TOML configurations: key pools read
//! from the environment (a revoked key cools down and the next serves),
//! `maniac config check`, and configuration errors reported before the
//! database is touched, in one line, with no stack trace.

use std::process::Command;

use maniac_tests::harness::{TestDb, http};
use maniac_tests::process::{Maniac, maniac_bin, write_config};
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

async fn ask(base: &str, key: &str, text: &str) -> (u16, Value) {
    let rsp = http()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "fake/m",
                      "messages": [{"role": "user", "content": text}]}))
        .send()
        .await
        .unwrap();
    (rsp.status().as_u16(), rsp.json().await.unwrap())
}

#[tokio::test]
async fn a_revoked_pool_key_cools_down_and_the_next_key_serves() {
    let Some(db) = TestDb::create().await else { return };
    let up = FakeUpstream::start().await;
    up.reject_authorization("Bearer sk-pool-revoked-aaaa");
    let dir = temp_dir("pool");
    let cfg = write_config(
        &dir,
        &up.base_url(),
        "api_key_envs = [\"POOL_KEY_A\", \"POOL_KEY_B\"]\n",
    );
    let gw = Maniac::serve(
        &db.url,
        &cfg,
        &[
            ("POOL_KEY_A", "sk-pool-revoked-aaaa"),
            ("POOL_KEY_B", "sk-pool-good-bbbb"),
        ],
    );
    let key = gw.bootstrap_key.clone().unwrap();
    for i in 0..4 {
        let (status, v) = ask(&gw.base, &key, &format!("turn {i}")).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(
            v["choices"][0]["message"]["content"],
            format!("You said: turn {i}")
        );
    }
    let auths: Vec<String> = up
        .requests()
        .into_iter()
        .map(|r| r.authorization.unwrap_or_default())
        .collect();
    // The first call met the revoked key, the router took the next key at
    // once, and the revoked one stayed out of rotation after that.
    assert_eq!(
        auths,
        [
            "Bearer sk-pool-revoked-aaaa",
            "Bearer sk-pool-good-bbbb",
            "Bearer sk-pool-good-bbbb",
            "Bearer sk-pool-good-bbbb",
            "Bearer sk-pool-good-bbbb",
        ]
    );
    let log = gw.log();
    assert!(log.contains("upstream refused the gateway's key"), "{log}");
    assert!(!log.contains("sk-pool-"), "a key reached the log");
}

#[tokio::test]
async fn with_every_key_refused_the_caller_gets_502_upstream_auth_failed() {
    let Some(db) = TestDb::create().await else { return };
    let up = FakeUpstream::start().await;
    up.reject_authorization("Bearer sk-dead-one-1111");
    up.reject_authorization("Bearer sk-dead-two-2222");
    let dir = temp_dir("dead");
    let cfg = write_config(
        &dir,
        &up.base_url(),
        "api_key_envs = [\"DEAD_A\", \"DEAD_B\"]\n",
    );
    let gw = Maniac::serve(
        &db.url,
        &cfg,
        &[("DEAD_A", "sk-dead-one-1111"), ("DEAD_B", "sk-dead-two-2222")],
    );
    let key = gw.bootstrap_key.clone().unwrap();
    let (status, v) = ask(&gw.base, &key, "hi").await;
    assert_eq!(status, 502, "{v}");
    assert_eq!(v["error"]["code"], "upstream_auth_failed");
    assert!(!v.to_string().contains("sk-dead"), "{v}");
    assert_eq!(up.request_count(), 2, "each key tried once");
}

fn check(config: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(maniac_bin())
        .args(["config", "check", "--config"])
        .arg(config)
        .env("RUST_BACKTRACE", "1")
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_check_validates_without_serving() {
    let dir = temp_dir("check");
    let good = write_config(
        &dir,
        "http://127.0.0.1:9/v1",
        "[models.smart]\ntargets = [\"fake/a\", { model = \"echo/echo\", weight = 2 }]\nstrategy = \"weighted\"\n\n[routing]\nmax_retries = 1\n",
    );
    let (ok, stdout, stderr) = check(&good);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("2 provider(s) (echo, fake)"), "{stdout}");
    assert!(stdout.contains("1 alias(es) (smart)"), "{stdout}");

    let bad_alias = write_config(
        &dir,
        "http://127.0.0.1:9/v1",
        "[models.smart]\ntargets = [\"nowhere/a\"]\n",
    );
    let (ok, _, stderr) = check(&bad_alias);
    assert!(!ok);
    assert!(stderr.contains("models.\"smart\".targets"), "{stderr}");
    assert!(stderr.contains("nowhere"), "{stderr}");
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let missing_env = write_config(
        &dir,
        "http://127.0.0.1:9/v1",
        "api_key_envs = [\"MANIAC_SURELY_UNSET_VAR\"]\n",
    );
    let (ok, _, stderr) = check(&missing_env);
    assert!(!ok);
    assert!(stderr.contains("MANIAC_SURELY_UNSET_VAR"), "{stderr}");

    let typo = write_config(
        &dir,
        "http://127.0.0.1:9/v1",
        "[routing]\nmax_retrys = 3\n",
    );
    let (ok, _, stderr) = check(&typo);
    assert!(!ok);
    assert!(stderr.contains("max_retrys"), "{stderr}");
}

#[test]
fn a_config_error_stops_serve_before_the_database_is_created() {
    let dir = temp_dir("early");
    // Parses, but names a provider that does not exist.
    let cfg = write_config(
        &dir,
        "http://127.0.0.1:9/v1",
        "[models.smart]\ntargets = [\"nowhere/a\"]\n",
    );
    let db = dir.join("never.db");
    let out = Command::new(maniac_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(format!("sqlite://{}", db.display()))
        .arg("--config")
        .arg(&cfg)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nowhere"), "{stderr}");
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
    assert!(
        !db.exists(),
        "the database was created before the config was checked"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("Created organization"), "{stdout}");
}
