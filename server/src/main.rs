//! `maniac`: serve the gateway, manage API keys, apply migrations.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use maniac_server::config::FileConfig;
use maniac_server::initial_key;
use maniac_server::server::{self, ServeOptions};

#[derive(Parser)]
#[command(
    name = "maniac",
    version,
    about = "The Maniac gateway: the OpenAI Responses API in front of many model providers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "MANIAC_LISTEN")]
        listen: Option<SocketAddr>,
        /// Database URL: sqlite://FILE (created if missing) or postgres://…
        #[arg(long, env = "MANIAC_DATABASE_URL")]
        database_url: Option<String>,
        /// TOML configuration file (providers, background runs, pool).
        #[arg(long, env = "MANIAC_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Check a configuration file (providers, keys in the environment,
    /// aliases) without serving.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Apply database migrations and exit.
    Migrate {
        /// Database URL.
        #[arg(long, env = "MANIAC_DATABASE_URL")]
        database_url: Option<String>,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Validate a file: every provider is built (its key variables read,
    /// its CA file loaded) and every alias resolved. Exit status 1 on the
    /// first error, which names the field.
    Check {
        /// TOML configuration file.
        #[arg(long, env = "MANIAC_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Create a key (and its organization); prints the key on the last line.
    Create {
        /// Organization name.
        #[arg(long)]
        org: String,
        /// A label for the key.
        #[arg(long)]
        name: Option<String>,
        /// Database URL.
        #[arg(long, env = "MANIAC_DATABASE_URL")]
        database_url: Option<String>,
    },
    /// List keys (never the secrets).
    List {
        /// Database URL.
        #[arg(long, env = "MANIAC_DATABASE_URL")]
        database_url: Option<String>,
    },
    /// Revoke a key by id.
    Revoke {
        /// Key id (`key_…`).
        key_id: String,
        /// Database URL.
        #[arg(long, env = "MANIAC_DATABASE_URL")]
        database_url: Option<String>,
    },
}

const DEFAULT_DB: &str = "sqlite://maniac.db";

/// `maniac config check`.
fn check_config(path: Option<&std::path::Path>) -> anyhow::Result<()> {
    let file = match path {
        Some(p) => FileConfig::load(p).map_err(anyhow::Error::msg)?,
        None => FileConfig::default(),
    };
    if let Some(l) = &file.listen {
        l.parse::<SocketAddr>().map_err(|e| {
            anyhow::anyhow!("listen: '{l}' is not an address: {e}")
        })?;
    }
    if let Some(url) = &file.database_url
        && !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
    {
        anyhow::bail!(
            "database_url: use sqlite://FILE or postgres://…, not '{url}'"
        );
    }
    let registry = file.providers().map_err(anyhow::Error::msg)?;
    file.compaction.sealer_from_env().map_err(anyhow::Error::msg)?;
    maniac_server::metrics::exposition::Exposition::from_config(
        &file.metrics,
        maniac_server::metrics::Metrics::default(),
    )
    .map_err(anyhow::Error::msg)?;
    let providers = registry.names();
    let aliases: Vec<&str> = registry.alias_names().collect();
    println!(
        "ok: {} provider(s) ({}), {} alias(es){}",
        providers.len(),
        providers.join(", "),
        aliases.len(),
        if aliases.is_empty() {
            String::new()
        } else {
            format!(" ({})", aliases.join(", "))
        }
    );
    Ok(())
}
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Logs go to stderr in batches (see `logging`): a request never waits on
/// a `write` syscall. Keep the guard until exit: it flushes what is left.
fn init_logging() -> maniac_server::logging::FlushGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MANIAC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = maniac_server::logging::BatchedStderr::start();
    let fmt = tracing_subscriber::fmt().with_env_filter(filter);
    // `MANIAC_LOG_FORMAT=json`: one JSON object a line, the event's
    // fields at the top level, through the same batched writer.
    if std::env::var("MANIAC_LOG_FORMAT").is_ok_and(|f| f == "json") {
        fmt.json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(writer)
            .init();
    } else {
        fmt.with_ansi(ansi).with_writer(writer).init();
    }
    guard
}

/// Errors end the process with one line on stderr and status 1: no
/// stack trace, whatever `RUST_BACKTRACE` says.
#[tokio::main]
async fn main() -> std::process::ExitCode {
    let log_guard = init_logging();
    let result = run(Cli::parse().command).await;
    drop(log_guard);
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Config { action: ConfigAction::Check { config } } => {
            check_config(config.as_deref())
        }
        Command::Serve { listen, database_url, config } => {
            let file = match &config {
                Some(path) => {
                    FileConfig::load(path).map_err(anyhow::Error::msg)?
                }
                None => FileConfig::default(),
            };
            let listen = match listen {
                Some(l) => l,
                None => file
                    .listen
                    .as_deref()
                    .unwrap_or(DEFAULT_LISTEN)
                    .parse()
                    .context("listen address")?,
            };
            let database_url = database_url
                .or_else(|| file.database_url.clone())
                .unwrap_or_else(|| DEFAULT_DB.to_string());
            let internal_key = std::env::var("MANIAC_INTERNAL_KEY")
                .ok()
                .filter(|k| !k.is_empty())
                .map(maniac_server::secret::Secret::new);
            // Absolute, so the logged path says where it is.
            let key_file = initial_key::path_for(&database_url);
            let key_file = std::path::absolute(&key_file).unwrap_or(key_file);
            let running = server::start(ServeOptions {
                listen,
                database_url,
                file,
                internal_key,
            })
            .await?;
            if let Some(key) = &running.bootstrap_key {
                hand_over_initial_key(key, &key_file)?;
            }
            println!("Maniac gateway listening on http://{}/v1", running.addr);
            wait_for_signal().await;
            tracing::info!("shutting down");
            running.shutdown().await;
            Ok(())
        }
        Command::Keys { action } => keys(action).await,
        Command::Migrate { database_url } => {
            let url = database_url.unwrap_or_else(|| DEFAULT_DB.to_string());
            server::open_store(&url, &FileConfig::default()).await?;
            println!("migrations applied");
            Ok(())
        }
    }
}

/// The key of a fresh store goes to the operator's terminal, or, when
/// stdout is captured (a service manager, a container, CI), to a file only
/// its owner can read, whose path is logged: logs never hold it.
fn hand_over_initial_key(
    key: &str,
    key_file: &std::path::Path,
) -> anyhow::Result<()> {
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        println!(
            "Created organization 'default' with an API key (shown once, keep it safe):"
        );
        println!("{key}");
        return Ok(());
    }
    initial_key::write(key_file, key).with_context(|| {
        format!(
            "writing the first API key to {} (create another with \
             `maniac keys create --org default`)",
            key_file.display()
        )
    })?;
    tracing::info!(
        path = %key_file.display(),
        "created organization 'default'; its API key is in this file (mode 0600)"
    );
    println!(
        "Created organization 'default'; its API key is in {} (mode 0600)",
        key_file.display()
    );
    Ok(())
}

async fn keys(action: KeysAction) -> anyhow::Result<()> {
    let db = |u: Option<String>| u.unwrap_or_else(|| DEFAULT_DB.to_string());
    match action {
        KeysAction::Create { org, name, database_url } => {
            let store =
                server::open_store(&db(database_url), &FileConfig::default())
                    .await?;
            let key = maniac_server::auth::generate();
            store
                .create_key(&org, name.as_deref(), &key.key_id, &key.hash)
                .await?;
            println!(
                "Created key {} for organization '{org}' (shown once):",
                key.key_id
            );
            println!("{}", key.secret);
        }
        KeysAction::List { database_url } => {
            let store =
                server::open_store(&db(database_url), &FileConfig::default())
                    .await?;
            for k in store.list_keys().await? {
                let state =
                    if k.revoked_at.is_some() { "revoked" } else { "active" };
                println!(
                    "{}\t{}\t{}\t{}",
                    k.key_id,
                    k.org_name,
                    k.name.unwrap_or_default(),
                    state
                );
            }
        }
        KeysAction::Revoke { key_id, database_url } => {
            let store =
                server::open_store(&db(database_url), &FileConfig::default())
                    .await?;
            if !store.revoke_key(&key_id).await? {
                anyhow::bail!("no key with id {key_id}");
            }
            println!("revoked {key_id}");
        }
    }
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
