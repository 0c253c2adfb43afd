//! The upstream client behind an HTTP proxy, over real sockets: https
//! upstreams through `CONNECT` tunnels, http upstreams in absolute form,
//! proxy credentials, refusals, and keep-alive through the proxy.

use bytes::Bytes;
use futures::StreamExt;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{StatusCode, Uri};
use maniac_server::providers::client::{
    Client, ClientError, ClientOptions, ProxyChoice,
};
use maniac_tests::proxy::{FakeProxy, ProxyOptions};
use maniac_tests::upstream::{FakeUpstream, TestTls};
use serde_json::{Value, json};

/// `Basic` of `user:secret`.
const USER_SECRET: &str = "Basic dXNlcjpzZWNyZXQ=";

fn client(
    upstream: &FakeUpstream,
    tls: Option<&TestTls>,
    proxy: ProxyChoice,
) -> Client {
    let base: Uri = upstream.base_url().parse().expect("base URL");
    let opts = ClientOptions {
        extra_roots_pem: tls.map(|t| t.ca_pem.clone().into_bytes()),
        proxy,
        ..ClientOptions::default()
    };
    Client::new(&base, opts).expect("client")
}

fn chat_request(text: &str, stream: bool) -> Bytes {
    let body = json!({
        "model": "fake-large",
        "messages": [{"role": "user", "content": text}],
        "stream": stream,
    });
    Bytes::from(body.to_string())
}

fn json_headers() -> [(HeaderName, HeaderValue); 1] {
    [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))]
}

const PATH: PathAndQuery = PathAndQuery::from_static("/v1/chat/completions");

/// POSTs a chat completion; the status and the body (`Null` if not JSON).
async fn chat(
    client: &Client,
    text: &str,
) -> Result<(StatusCode, Value), ClientError> {
    let answer =
        client.post(&PATH, &json_headers(), chat_request(text, false)).await?;
    let status = answer.status;
    let body = answer.bytes(1 << 20).await?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

fn reply(body: &Value) -> &str {
    body["choices"][0]["message"]["content"].as_str().unwrap_or("")
}

async fn https_setup(
    options: ProxyOptions,
) -> (TestTls, FakeUpstream, FakeProxy) {
    let tls = TestTls::generate();
    let upstream = FakeUpstream::start_tls(&tls).await;
    let proxy = FakeProxy::start_with(options).await;
    (tls, upstream, proxy)
}

fn connect_error(r: Result<(StatusCode, Value), ClientError>) -> String {
    match r {
        Err(ClientError::Connect(m)) => m,
        Err(e) => panic!("expected a connect error, got {e}"),
        Ok((status, body)) => panic!("expected an error, got {status} {body}"),
    }
}

#[tokio::test]
async fn https_upstream_goes_through_a_connect_tunnel() {
    let (tls, upstream, proxy) = https_setup(ProxyOptions::default()).await;
    let c = client(&upstream, Some(&tls), ProxyChoice::Url(proxy.url()));

    let (status, body) = chat(&c, "through the tunnel").await.expect("answer");
    assert_eq!(status, 200, "{body}");
    assert_eq!(reply(&body), "You said: through the tunnel");
    let port = upstream.addr().port();
    assert_eq!(proxy.connect_targets(), [format!("localhost:{port}")]);
    assert!(proxy.request_lines().is_empty(), "{:?}", proxy.request_lines());
    assert_eq!(upstream.request_count(), 1);
}

#[tokio::test]
async fn http_upstream_is_sent_in_absolute_form() {
    let upstream = FakeUpstream::start().await;
    let proxy = FakeProxy::start().await;
    let c = client(&upstream, None, ProxyChoice::Url(proxy.url()));

    let (status, body) = chat(&c, "absolute form").await.expect("answer");
    assert_eq!(status, 200, "{body}");
    assert_eq!(reply(&body), "You said: absolute form");
    let origin = upstream.addr();
    assert_eq!(
        proxy.request_lines(),
        [format!("POST http://{origin}/v1/chat/completions HTTP/1.1")]
    );
    assert!(proxy.connect_targets().is_empty());
    assert_eq!(upstream.request_count(), 1);
}

#[tokio::test]
async fn default_options_connect_directly() {
    let upstream = FakeUpstream::start().await;
    let proxy = FakeProxy::start().await;
    let c = client(&upstream, None, ClientOptions::default().proxy);

    let (_, body) = chat(&c, "direct").await.expect("answer");
    assert_eq!(reply(&body), "You said: direct");
    assert_eq!(proxy.connections(), 0);
}

#[tokio::test]
async fn proxy_credentials_are_sent_to_the_proxy_only() {
    let options = ProxyOptions {
        require_authorization: Some(USER_SECRET.into()),
        ..ProxyOptions::default()
    };

    // https: once, on CONNECT; the requests inside the tunnel are the
    // upstream's business.
    let (tls, upstream, proxy) = https_setup(options.clone()).await;
    let url = proxy.url_with("user", "secret");
    let c = client(&upstream, Some(&tls), ProxyChoice::Url(url));
    for text in ["one", "two"] {
        let (status, body) = chat(&c, text).await.expect("answer");
        assert_eq!(
            (status.as_u16(), reply(&body)),
            (200, &*format!("You said: {text}"))
        );
    }
    assert_eq!(proxy.authorizations(), [Some(USER_SECRET.to_string())]);

    // http: on every request.
    let upstream = FakeUpstream::start().await;
    let proxy = FakeProxy::start_with(options).await;
    let url = proxy.url_with("user", "secret");
    let c = client(&upstream, None, ProxyChoice::Url(url));
    for text in ["one", "two"] {
        let (status, body) = chat(&c, text).await.expect("answer");
        assert_eq!(
            (status.as_u16(), reply(&body)),
            (200, &*format!("You said: {text}"))
        );
    }
    assert_eq!(proxy.authorizations(), vec![Some(USER_SECRET.to_string()); 2]);
}

#[tokio::test]
async fn refused_proxy_credentials_are_a_connect_error_naming_407() {
    let options = ProxyOptions {
        require_authorization: Some(USER_SECRET.into()),
        ..ProxyOptions::default()
    };
    let (tls, upstream, proxy) = https_setup(options).await;
    // (case, proxy URL)
    let table = [
        ("no credentials", proxy.url()),
        ("wrong password", proxy.url_with("user", "hunter2")),
    ];
    for (case, url) in table {
        let c = client(&upstream, Some(&tls), ProxyChoice::Url(url));
        let msg = connect_error(chat(&c, "hello").await);
        assert!(msg.contains("407"), "{case}: {msg}");
        assert!(msg.contains(&proxy.addr().to_string()), "{case}: {msg}");
        for secret in ["hunter2", "user:", "dXNlcj"] {
            assert!(!msg.contains(secret), "{case}: {msg}");
        }
    }
    assert_eq!(upstream.request_count(), 0);
    assert_eq!(upstream.connections(), 0);
}

#[tokio::test]
async fn refused_proxy_credentials_on_http_are_the_proxys_407_answer() {
    let upstream = FakeUpstream::start().await;
    let proxy = FakeProxy::start_with(ProxyOptions {
        require_authorization: Some(USER_SECRET.into()),
        ..ProxyOptions::default()
    })
    .await;
    let url = proxy.url_with("user", "hunter2");
    let c = client(&upstream, None, ProxyChoice::Url(url));
    let (status, _) = chat(&c, "hello").await.expect("an answer");
    assert_eq!(status, StatusCode::PROXY_AUTHENTICATION_REQUIRED);
    assert_eq!(upstream.request_count(), 0);
}

#[tokio::test]
async fn refused_tunnel_is_a_connect_error_naming_403() {
    let (tls, upstream, proxy) = https_setup(ProxyOptions {
        refuse_connect: true,
        ..ProxyOptions::default()
    })
    .await;
    let url = proxy.url_with("user", "hunter2");
    let c = client(&upstream, Some(&tls), ProxyChoice::Url(url));
    let msg = connect_error(chat(&c, "hello").await);
    assert!(msg.contains("403"), "{msg}");
    assert!(!msg.contains("hunter2") && !msg.contains("user:"), "{msg}");
    assert_eq!(proxy.connect_targets().len(), 1);
    assert_eq!(upstream.connections(), 0);
}

#[tokio::test]
async fn unreachable_proxy_is_a_connect_error_naming_it() {
    let upstream = FakeUpstream::start().await;
    // A port nobody listens on: bound, then released.
    let gone = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let url = format!("http://user:hunter2@{gone}");
    let c = client(&upstream, None, ProxyChoice::Url(url));
    let msg = connect_error(chat(&c, "hello").await);
    assert!(msg.contains(&format!("proxy {gone}")), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[tokio::test]
async fn tunnels_are_pooled_and_reused() {
    let (tls, upstream, proxy) = https_setup(ProxyOptions::default()).await;
    let c = client(&upstream, Some(&tls), ProxyChoice::Url(proxy.url()));

    let (_, body) = chat(&c, "first").await.expect("answer");
    assert_eq!(reply(&body), "You said: first");

    // A streamed answer read to its end hands the tunnel back too.
    let answer = c
        .post(&PATH, &json_headers(), chat_request("WORDS:5", true))
        .await
        .expect("stream");
    assert_eq!(answer.status, 200);
    let chunks: Vec<_> = answer.into_stream().collect().await;
    let text: Vec<u8> =
        chunks.into_iter().flat_map(|c| c.expect("chunk").to_vec()).collect();
    assert!(String::from_utf8_lossy(&text).contains("[DONE]"));

    let (_, body) = chat(&c, "third").await.expect("answer");
    assert_eq!(reply(&body), "You said: third");

    assert_eq!(upstream.request_count(), 3);
    assert_eq!(proxy.connect_targets().len(), 1, "one CONNECT");
    assert_eq!(proxy.connections(), 1);
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn proxy_connections_are_pooled_and_reused_for_http() {
    let upstream = FakeUpstream::start().await;
    let proxy = FakeProxy::start().await;
    let c = client(&upstream, None, ProxyChoice::Url(proxy.url()));
    for text in ["first", "second", "third"] {
        let (_, body) = chat(&c, text).await.expect("answer");
        assert_eq!(reply(&body), format!("You said: {text}"));
    }
    assert_eq!(proxy.request_lines().len(), 3);
    assert_eq!(proxy.connections(), 1);
}

#[tokio::test]
async fn invalid_proxy_url_is_refused_without_echoing_it() {
    let upstream = FakeUpstream::start().await;
    let base: Uri = upstream.base_url().parse().expect("base URL");
    let opts = ClientOptions {
        proxy: ProxyChoice::Url("socks5://user:hunter2@proxy:1080".into()),
        ..ClientOptions::default()
    };
    let Err(msg) = Client::new(&base, opts) else {
        panic!("a socks5 proxy should be refused");
    };
    assert!(msg.contains("http://"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
}

/// The whole gateway with `proxy = "…"` on a provider: both front ends
/// reach the upstream through the proxy.
#[tokio::test]
async fn a_provider_configured_with_a_proxy_is_reached_through_it() {
    use maniac_server::providers::ProviderConfig;
    use maniac_server::providers::openai_chat::ChatConfig;
    use maniac_tests::harness::{Gateway, Options};

    let proxy = FakeProxy::start().await;
    let up = FakeUpstream::start().await;
    let Some(gw) = Gateway::start_with(Options {
        extra_providers: vec![(
            "proxied".into(),
            ProviderConfig::OpenAiChat(ChatConfig {
                proxy: Some(proxy.url()),
                ..ChatConfig::at(up.base_url())
            }),
        )],
        ..Options::default()
    })
    .await
    else {
        return;
    };
    let body = json!({"model": "proxied/m", "input": "via proxy"});
    let v: Value =
        gw.post(&gw.key, "/v1/responses", &body).await.json().await.unwrap();
    assert_eq!(v["output"][0]["content"][0]["text"], "You said: via proxy");
    let lines = proxy.request_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0]
            .starts_with(&format!("POST {}/chat/completions", up.base_url())),
        "{lines:?}"
    );
    assert_eq!(up.request_count(), 1);
}
