//! The `CONNECT` handshake: asks a proxy for a byte tunnel to the
//! upstream and reads its answer head (bounded), so TLS can start inside.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::ProxyUrl;
use crate::providers::client::ClientError;

/// Largest `CONNECT` answer head read from a proxy.
const MAX_CONNECT_ANSWER: usize = 8 * 1024;

/// Asks the proxy on `tcp` for a tunnel to `target` (`host:port`) and
/// waits for its answer; on 2xx the stream is the tunnel. The caller
/// bounds the time taken.
pub(crate) async fn connect_tunnel(
    tcp: &mut TcpStream,
    proxy: &ProxyUrl,
    target: &str,
) -> Result<(), ClientError> {
    let name = proxy.authority();
    let io_error =
        |e: std::io::Error| ClientError::Connect(format!("proxy {name}: {e}"));
    let mut head =
        format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n").into_bytes();
    if let Some(auth) = &proxy.authorization {
        head.extend_from_slice(b"Proxy-Authorization: ");
        head.extend_from_slice(auth.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    tcp.write_all(&head).await.map_err(io_error)?;

    let mut buf = Vec::with_capacity(1024);
    let end = loop {
        if buf.len() >= MAX_CONNECT_ANSWER {
            return Err(ClientError::Connect(format!(
                "proxy {name}: its CONNECT answer exceeds \
                 {MAX_CONNECT_ANSWER} bytes"
            )));
        }
        let mut chunk = [0u8; 1024];
        let room = (MAX_CONNECT_ANSWER - buf.len()).min(chunk.len());
        let n = tcp.read(&mut chunk[..room]).await.map_err(io_error)?;
        if n == 0 {
            return Err(ClientError::Connect(format!(
                "proxy {name} closed the connection before answering CONNECT"
            )));
        }
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            break from + i + 4;
        }
    };
    let status = connect_status(&buf[..end]).ok_or_else(|| {
        ClientError::Connect(format!(
            "proxy {name} did not answer CONNECT with HTTP"
        ))
    })?;
    if !status.is_success() {
        return Err(ClientError::Connect(format!(
            "proxy {name} refused the tunnel to {target}: {status}{}",
            if status.as_u16() == 407 {
                " (check the proxy's user and password)"
            } else {
                ""
            }
        )));
    }
    // TLS speaks first, so the upstream cannot have sent anything yet:
    // bytes past the answer would be lost or misread.
    if end != buf.len() {
        return Err(ClientError::Connect(format!(
            "proxy {name} sent data after its CONNECT answer"
        )));
    }
    Ok(())
}

/// The status of an answer head (`HTTP/1.x NNN reason`).
fn connect_status(head: &[u8]) -> Option<http::StatusCode> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.trim_end().splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    http::StatusCode::from_bytes(parts.next()?.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-shot proxy on 127.0.0.1 that reads a request head, answers
    /// `answer` and then waits for the client to hang up (or hangs up at
    /// once when `close`); resolves to the head it read.
    async fn scripted_proxy(
        answer: Vec<u8>,
        close: bool,
    ) -> (ProxyUrl, tokio::task::JoinHandle<String>) {
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.expect("accept");
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if tcp.read(&mut byte).await.unwrap_or(0) == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            let _ = tcp.write_all(&answer).await;
            if !close {
                let _ = tcp.read(&mut byte).await;
            }
            String::from_utf8_lossy(&head).into_owned()
        });
        let url = format!("http://u:p@127.0.0.1:{port}");
        (ProxyUrl::parse(&url).expect("proxy URL"), task)
    }

    async fn tunnel(
        answer: &[u8],
        close: bool,
    ) -> (Result<(), String>, String) {
        let (proxy, task) = scripted_proxy(answer.to_vec(), close).await;
        let mut tcp = TcpStream::connect((proxy.host.as_str(), proxy.port))
            .await
            .expect("connect");
        let r = connect_tunnel(&mut tcp, &proxy, "api.x:443")
            .await
            .map_err(|e| e.to_string());
        drop(tcp);
        (r, task.await.expect("proxy task"))
    }

    #[tokio::test]
    async fn connect_sends_host_and_credentials_and_accepts_2xx() {
        let (r, head) =
            tunnel(b"HTTP/1.0 200 Connection established\r\n\r\n", false).await;
        assert_eq!(r, Ok(()));
        assert_eq!(
            head,
            "CONNECT api.x:443 HTTP/1.1\r\nHost: api.x:443\r\n\
             Proxy-Authorization: Basic dTpw\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn connect_answers_that_open_no_tunnel_are_connect_errors() {
        let huge = format!(
            "HTTP/1.1 200 OK\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(MAX_CONNECT_ANSWER)
        );
        // (case, answer, proxy hangs up, error contains)
        let table: &[(&str, &[u8], bool, &str)] = &[
            ("407", b"HTTP/1.1 407 Auth\r\n\r\n", false, "407"),
            (
                "503 with a body",
                b"HTTP/1.1 503 Down\r\nContent-Length: 4\r\n\r\ndown",
                false,
                "503",
            ),
            ("hang-up", b"", true, "closed the connection"),
            (
                "half an answer",
                b"HTTP/1.1 200 OK\r\n",
                true,
                "closed the connection",
            ),
            (
                "not HTTP",
                b"SSH-2.0-OpenSSH_9\r\n\r\n",
                false,
                "did not answer CONNECT with HTTP",
            ),
            ("too long", huge.as_bytes(), false, "exceeds 8192 bytes"),
            (
                "bytes after",
                b"HTTP/1.1 200 OK\r\n\r\nhello",
                false,
                "sent data after",
            ),
        ];
        let mut wrong = Vec::new();
        for (case, answer, close, want) in table {
            let (r, _) = tunnel(answer, *close).await;
            match r {
                Err(e) if e.contains(want) && !e.contains("dTpw") => {}
                other => wrong.push(format!("{case}: {other:?}")),
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn connect_answer_status_line() {
        let s = |h: &[u8]| connect_status(h).map(|s| s.as_u16());
        assert_eq!(
            s(b"HTTP/1.1 200 Connection established\r\n\r\n"),
            Some(200)
        );
        assert_eq!(s(b"HTTP/1.0 200\r\n\r\n"), Some(200));
        assert_eq!(s(b"HTTP/1.1 407 Proxy Auth\r\n\r\n"), Some(407));
        assert_eq!(s(b"SSH-2.0-OpenSSH\r\n\r\n"), None);
    }
}
