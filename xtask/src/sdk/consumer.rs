//! `cargo xtask sdk consumer`: the app in `tests/sdk-consumer/` (outside the
//! workspace, depending on the SDK by path as a user's app would) run
//! against a real `maniac` on a fresh SQLite database.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

/// A child process, killed and reaped when dropped (also on errors).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// Starts the gateway and waits for its "listening on" line.
fn start_gateway(
    maniac: &Path,
    listen: &str,
    database_url: &str,
    log: &Path,
) -> anyhow::Result<Guard> {
    let log_file = std::fs::File::create(log)
        .with_context(|| format!("creating {}", log.display()))?;
    let mut child = Command::new(maniac)
        .args(["serve", "--listen", listen, "--database-url", database_url])
        .env("MANIAC_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("starting {}", maniac.display()))?;
    let stdout = child.stdout.take().context("gateway stdout")?;
    let mut gateway = Guard(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) if line.contains("listening on http") => {
                return Ok(gateway);
            }
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout)
                if Instant::now() < deadline => {}
            Err(_) => {
                let exited = gateway.0.try_wait().ok().flatten();
                let log = std::fs::read_to_string(log).unwrap_or_default();
                bail!(
                    "the gateway did not start (exit: {exited:?}); its log:\n\
                     {log}"
                );
            }
        }
    }
}

/// Stops the gateway as an operator would (SIGTERM) and waits for it.
fn stop_gateway(mut gateway: Guard) -> anyhow::Result<()> {
    let pid = gateway.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(status) = gateway.0.try_wait()? {
            if !status.success() {
                bail!("the gateway exited with {status} on SIGTERM");
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("the gateway did not stop within 20 s of SIGTERM")
}

pub fn run(root: &Path) -> anyhow::Result<()> {
    let status = super::cargo()
        .current_dir(root)
        .args(["build", "--workspace", "--bins"])
        .status()
        .context("cargo build")?;
    if !status.success() {
        bail!("building maniac failed");
    }
    let target = target_dir(root);
    let maniac = target.join("debug/maniac");

    let tmp = TempDir(
        std::env::temp_dir()
            .join(format!("maniac-sdk-consumer-{}", std::process::id())),
    );
    std::fs::create_dir_all(&tmp.0).context("creating a temp dir")?;
    let database_url = format!("sqlite://{}/x.db", tmp.0.display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let listen = format!("127.0.0.1:{port}");
    let log = tmp.0.join("maniac.log");
    let gateway = start_gateway(&maniac, &listen, &database_url, &log)?;

    let keys = Command::new(&maniac)
        .args(["keys", "create", "--org", "ci", "--database-url"])
        .arg(&database_url)
        .env("MANIAC_LOG", "warn")
        .output()
        .context("maniac keys create")?;
    let stdout = String::from_utf8_lossy(&keys.stdout);
    let key = stdout.lines().last().unwrap_or_default().trim().to_string();
    if !keys.status.success() || key.is_empty() {
        bail!(
            "maniac keys create failed ({}): {stdout}{}",
            keys.status,
            String::from_utf8_lossy(&keys.stderr)
        );
    }

    eprintln!("gateway at http://{listen}/v1; running tests/sdk-consumer");
    let status = super::cargo()
        .current_dir(root)
        .args(["run", "--quiet", "--locked", "--manifest-path"])
        .arg(root.join("tests/sdk-consumer/Cargo.toml"))
        // Shares the workspace's compiled dependencies.
        .env("CARGO_TARGET_DIR", &target)
        .env("MANIAC_BASE_URL", format!("http://{listen}/v1"))
        .env("MANIAC_KEY", &key)
        .status()
        .context("cargo run tests/sdk-consumer")?;
    let stopped = stop_gateway(gateway);
    if !status.success() {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        bail!("tests/sdk-consumer failed ({status}); gateway log:\n{log}");
    }
    stopped?;
    eprintln!("tests/sdk-consumer passed against the gateway");
    Ok(())
}
