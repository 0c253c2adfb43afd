//! The real `maniac` binary as a child process: for crash (`kill -9`),
//! graceful-shutdown and multi-replica tests.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use maniac_server::initial_key;

/// Path of the `maniac` binary, built once per test process.
pub fn maniac_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo =
                std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "maniac-server",
                    "--bin",
                    "maniac",
                ])
                .status()
                .expect("cargo build");
            assert!(status.success(), "building maniac failed");
            let exe = std::env::current_exe().expect("test exe");
            // target/debug/deps/<test> -> target/debug/maniac
            let dir = exe.parent().and_then(Path::parent).expect("target dir");
            dir.join("maniac")
        })
        .clone()
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A running `maniac serve`.
pub struct Maniac {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The key created on first start, read from its key file (None if
    /// the store had keys).
    pub bootstrap_key: Option<String>,
    /// Everything written to stdout and stderr so far.
    pub output: Arc<Mutex<String>>,
}

impl Maniac {
    /// Starts `maniac serve` on a free port and waits until it is healthy.
    pub fn serve(
        database_url: &str,
        config: &Path,
        envs: &[(&str, &str)],
    ) -> Maniac {
        let port = free_port();
        let mut cmd = Command::new(maniac_bin());
        cmd.args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            database_url,
        ])
        .arg("--config")
        .arg(config)
        .env("MANIAC_LOG", "info")
        .env_remove("MANIAC_INTERNAL_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        // Its working directory holds the key file of a PostgreSQL store.
        let workdir = config.parent().expect("config dir").to_path_buf();
        cmd.current_dir(&workdir);
        let mut child = cmd.spawn().expect("spawn maniac");
        let output = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok)
                {
                    let mut o = output.lock().unwrap();
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok)
                {
                    let mut o = output.lock().unwrap();
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "maniac exited early with {status}:\n{}",
                    output.lock().unwrap()
                );
            }
            let ok = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            if ok && output.lock().unwrap().contains("listening on") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "maniac did not start:\n{}",
                output.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Stdout is a pipe: a fresh store's key is in the key file, written
        // before the listening line.
        let key_file = workdir.join(initial_key::path_for(database_url));
        let bootstrap_key = output
            .lock()
            .unwrap()
            .contains("Created organization 'default'")
            .then(|| initial_key_in(&key_file));
        Maniac { child, base, bootstrap_key, output }
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit (at most `within`); returns the
    /// exit code.
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                self.kill9();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the process printed.
    pub fn log(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for Maniac {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill9();
        }
    }
}

/// The key in a `maniac-initial-key` file, checking that only its owner
/// may read it.
pub fn initial_key_in(path: &Path) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "key file mode");
    }
    let text = std::fs::read_to_string(path).expect("key file");
    text.trim().to_string()
}

/// Writes a gateway config TOML pointing provider `fake` at `upstream`.
pub fn write_config(dir: &Path, upstream_base: &str, extra: &str) -> PathBuf {
    let path = dir.join("maniac.toml");
    let text = format!(
        "[providers.fake]\nkind = \"openai-chat\"\nbase_url = \"{upstream_base}\"\n{extra}\n"
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// Runs `maniac keys create` and returns the key (last stdout line).
pub fn create_key(database_url: &str, org: &str) -> String {
    let out = Command::new(maniac_bin())
        .args(["keys", "create", "--org", org, "--database-url", database_url])
        .output()
        .expect("keys create");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .expect("key line")
        .trim()
        .to_string()
}
