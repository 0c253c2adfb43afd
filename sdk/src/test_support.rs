//! Test fixtures: a canned `Response` and a one-answer-per-connection HTTP
//! server on loopback, to exercise the real request path without a gateway.

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    task::JoinHandle,
};

/// A valid `Response` object with one output text part.
pub fn response_json(status: &str, text: &str) -> String {
    serde_json::json!({
        "id": "resp_1", "object": "response", "created_at": 1,
        "status": status, "background": false, "model": "any",
        "provider": "echo", "metadata": {},
        "output": [{"type": "message", "id": "msg_1", "role": "assistant",
            "status": "completed", "content": [{"type": "output_text",
            "text": text, "annotations": [], "logprobs": []}]}],
        "parallel_tool_calls": true, "reasoning": {}, "store": true,
        "tags": [], "temperature": 1.0, "text": {"format": {"type": "text"}},
        "tool_choice": "auto", "tools": [], "top_logprobs": 0, "top_p": 1.0,
        "truncation": "disabled"
    })
    .to_string()
}

/// One SSE message.
pub fn sse(event: &str, data: &str) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

/// A whole HTTP/1.1 answer that closes the connection.
pub fn http(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Serves `answers` in order, one per connection. Returns the base URL and
/// a handle yielding the raw requests received.
pub async fn serve(answers: Vec<String>) -> (String, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        let mut requests = Vec::new();
        for answer in answers {
            let (mut socket, _) = listener.accept().await.unwrap();
            let request = read_request(&mut socket).await;
            requests.push(request);
            socket.write_all(answer.as_bytes()).await.unwrap();
            socket.shutdown().await.ok();
        }
        requests
    });
    (base, handle)
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = socket.read(&mut chunk).await.unwrap();
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return text;
            }
        }
        if n == 0 {
            return text;
        }
    }
}

/// A server that answers `answers` in order, one per connection, and
/// records when each request arrived; an empty answer closes the connection
/// without a word (a connection error). Stops when dropped.
pub struct FakeServer {
    pub base: String,
    arrivals: std::sync::Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
    task: JoinHandle<()>,
}

impl FakeServer {
    pub async fn start(answers: Vec<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let arrivals: std::sync::Arc<std::sync::Mutex<Vec<_>>> =
            std::sync::Arc::default();
        let seen = std::sync::Arc::clone(&arrivals);
        let task = tokio::spawn(async move {
            for answer in answers {
                let (mut socket, _) = listener.accept().await.unwrap();
                read_request(&mut socket).await;
                seen.lock().unwrap().push(std::time::Instant::now());
                socket.write_all(answer.as_bytes()).await.ok();
                socket.shutdown().await.ok();
            }
        });
        Self { base, arrivals, task }
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }

    /// When each request arrived.
    pub fn arrivals(&self) -> Vec<std::time::Instant> {
        self.arrivals.lock().unwrap().clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTP/1.1 answer with extra header lines (each `name: value`).
pub fn http_with(
    status: &str,
    headers: &[&str],
    content_type: &str,
    body: &str,
) -> String {
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n{extra}\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}
