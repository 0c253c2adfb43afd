//! End-to-end: `GET /v1/models` and `GET /v1/models/{model}` over real
//! HTTP: configured models as `provider/model`, the id's `/` percent-encoded
//! or raw, OpenAI-shaped 404s and 401s; upstream discovery (cached, an
//! unreachable upstream left out) and `strict_models` on both front ends.

use maniac_server::providers::ProviderConfig;
use maniac_server::providers::openai_chat::ChatConfig;
use maniac_tests::gateway;
use maniac_tests::harness::Options;
use serde_json::{Value, json};

#[tokio::test]
async fn models_lists_every_configured_model_as_provider_slash_model() {
    let gw = gateway!();
    let rsp = gw.get(&gw.key, "/v1/models").await;
    assert_eq!(rsp.status(), 200);
    let list: Value = rsp.json().await.unwrap();
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["echo/echo", "fake/listed-model"]);
    let m = &list["data"][1];
    assert_eq!(m["object"], "model");
    assert_eq!(m["owned_by"], "fake");
    assert!(m["created"].as_i64().unwrap() > 1_700_000_000);
}

#[tokio::test]
async fn a_model_is_found_by_its_encoded_or_raw_id() {
    let gw = gateway!();
    for path in ["/v1/models/echo%2Fecho", "/v1/models/echo/echo"] {
        let rsp = gw.get(&gw.key, path).await;
        assert_eq!(rsp.status(), 200, "{path}");
        let m: Value = rsp.json().await.unwrap();
        assert_eq!(m["id"], "echo/echo");
        assert_eq!(m["owned_by"], "echo");
    }
    let rsp = gw.get(&gw.key, "/v1/models/fake%2Fnope").await;
    assert_eq!(rsp.status(), 404);
    let e: Value = rsp.json().await.unwrap();
    assert_eq!(e["error"]["code"], "model_not_found");
    assert_eq!(e["error"]["param"], "model");
    let rsp = gw.get("sk-mn-wrong", "/v1/models").await;
    assert_eq!(rsp.status(), 401);
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

fn openai_chat(base_url: String, models: &[&str]) -> ChatConfig {
    ChatConfig {
        request_timeout_secs: Some(5),
        idle_timeout_secs: Some(5),
        models: models.iter().map(|m| m.to_string()).collect(),
        discover_models: true,
        ..ChatConfig::at(base_url)
    }
}

#[tokio::test]
async fn discovered_models_are_listed_after_the_configured_ones_and_cached() {
    let gw = gateway!(Options { discover_models: true, ..Options::default() });
    gw.upstream.set_models(&["fake-large", "listed-model", "fake-small"]);
    let list: Value = gw.get(&gw.key, "/v1/models").await.json().await.unwrap();
    assert_eq!(
        ids(&list),
        [
            "echo/echo",
            "fake/listed-model",
            "fake/fake-large",
            "fake/fake-small"
        ]
    );
    assert_eq!(list["data"][2]["owned_by"], "fake");
    let one = gw.get(&gw.key, "/v1/models/fake%2Ffake-small").await;
    assert_eq!(one.status(), 200);
    let again: Value =
        gw.get(&gw.key, "/v1/models").await.json().await.unwrap();
    assert_eq!(ids(&again), ids(&list));
    // One upstream listing served all three (the cache is fresh for
    // minutes), and no chat completion was made for it.
    assert_eq!(gw.upstream.model_list_requests().len(), 1);
    assert_eq!(gw.upstream.request_count(), 0);
}

#[tokio::test]
async fn an_upstream_that_cannot_list_is_left_out_and_the_listing_succeeds() {
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let down = openai_chat(format!("http://{closed}/v1"), &["configured"]);
    let gw = gateway!(Options {
        discover_models: true,
        extra_providers: vec![(
            "down".into(),
            ProviderConfig::OpenAiChat(down)
        )],
        ..Options::default()
    });
    gw.upstream.fail_models(500);
    let rsp = gw.get(&gw.key, "/v1/models").await;
    assert_eq!(rsp.status(), 200);
    let list: Value = rsp.json().await.unwrap();
    assert_eq!(
        ids(&list),
        ["down/configured", "echo/echo", "fake/listed-model"]
    );
    assert_eq!(gw.upstream.model_list_requests().len(), 1);
    let rsp = gw.get(&gw.key, "/v1/models/fake%2Ffake-large").await;
    assert_eq!(rsp.status(), 404);
}

#[tokio::test]
async fn strict_models_refuse_unlisted_models_on_both_front_ends() {
    let gw = gateway!(Options {
        strict_models: true,
        discover_models: true,
        ..Options::default()
    });
    let chat = |model: &str, stream: bool| {
        json!({"model": model, "stream": stream,
               "messages": [{"role": "user", "content": "hi"}]})
    };
    let resp = |model: &str, stream: bool| json!({"model": model, "stream": stream, "input": "hi"});
    for stream in [false, true] {
        for (path, body) in [
            ("/v1/chat/completions", chat("fake/unlisted", stream)),
            ("/v1/responses", resp("fake/unlisted", stream)),
        ] {
            let rsp = gw.post(&gw.key, path, &body).await;
            assert_eq!(rsp.status(), 404, "{path} stream={stream}");
            let e: Value = rsp.json().await.unwrap();
            assert_eq!(e["error"]["code"], "model_not_found");
            assert_eq!(e["error"]["param"], "model");
            assert_eq!(e["error"]["type"], "invalid_request_error");
            assert!(
                e["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("fake/unlisted")
            );
        }
    }
    assert_eq!(gw.upstream.request_count(), 0, "nothing reached the upstream");
    // Configured and discovered models are served.
    for model in ["fake/listed-model", "fake/fake-small"] {
        let rsp =
            gw.post(&gw.key, "/v1/chat/completions", &chat(model, false)).await;
        assert_eq!(rsp.status(), 200, "{model}");
        let rsp = gw.post(&gw.key, "/v1/responses", &resp(model, false)).await;
        assert_eq!(rsp.status(), 200, "{model}");
    }
    assert_eq!(gw.upstream.request_count(), 4);
}

#[tokio::test]
async fn unlisted_models_can_be_called_unless_strict() {
    let gw = gateway!();
    let body = json!({"model": "fake/unlisted", "input": "hi"});
    let rsp = gw.post(&gw.key, "/v1/responses", &body).await;
    assert_eq!(rsp.status(), 200);
    assert_eq!(gw.upstream.model_list_requests().len(), 0);
}

#[test]
fn strict_models_without_any_list_is_a_config_error() {
    let mut c = openai_chat("http://127.0.0.1:9/v1".into(), &[]);
    c.discover_models = false;
    c.strict_models = true;
    let err = ProviderConfig::OpenAiChat(c)
        .build("lonely", &Default::default())
        .err()
        .unwrap();
    assert!(err.contains("providers.lonely"), "{err}");
    assert!(err.contains("strict_models"), "{err}");
}
