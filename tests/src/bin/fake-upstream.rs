//! `fake-upstream [--listen 127.0.0.1:0] [--single-thread]`: runs the fake
//! OpenAI-compatible Chat Completions upstream of `maniac_tests::upstream`,
//! prints `listening on http://ADDR/v1` and serves until killed. Request
//! bodies are not recorded (nobody could read them), only counted. Also
//! serves the fake Anthropic Messages upstream (key from
//! `FAKE_ANTHROPIC_KEY`, if set) and the fake Responses upstream, printing
//! `anthropic on http://ADDR` and `responses on http://ADDR/v1` first.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use maniac_tests::anthropic::FakeAnthropic;
use maniac_tests::responses_upstream::FakeResponsesUpstream;
use maniac_tests::upstream::FakeUpstream;

const USAGE: &str = "usage: fake-upstream [--listen ADDR] [--single-thread]";

fn main() -> ExitCode {
    let mut listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut single_thread = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "--single-thread" => {
                single_thread = true;
                continue;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--listen" => args.next(),
            other => match other.strip_prefix("--listen=") {
                Some(v) => Some(v.to_string()),
                None => {
                    eprintln!(
                        "fake-upstream: unexpected argument {other:?}\n{USAGE}"
                    );
                    return ExitCode::from(2);
                }
            },
        };
        match value.as_deref().map(str::parse) {
            Some(Ok(addr)) => listen = addr,
            _ => {
                eprintln!(
                    "fake-upstream: --listen needs an address like 127.0.0.1:8080\n{USAGE}"
                );
                return ExitCode::from(2);
            }
        }
    }

    let runtime = if single_thread {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fake-upstream: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let upstream = match FakeUpstream::start_on(listen).await {
            Ok(u) => u,
            Err(e) => {
                eprintln!("fake-upstream: cannot listen on {listen}: {e}");
                return ExitCode::FAILURE;
            }
        };
        upstream.set_recording(false);
        let key = std::env::var("FAKE_ANTHROPIC_KEY").ok();
        let anthropic = FakeAnthropic::start(key.as_deref()).await;
        let responses = FakeResponsesUpstream::start().await;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "anthropic on {}", anthropic.base_url());
        let _ = writeln!(out, "responses on {}", responses.base_url());
        let _ = writeln!(out, "listening on {}", upstream.base_url());
        let _ = out.flush();
        drop(out);
        std::future::pending::<()>().await;
        drop((upstream, anthropic, responses));
        ExitCode::SUCCESS
    })
}
