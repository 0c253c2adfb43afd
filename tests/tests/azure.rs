//! Azure OpenAI and other hosts that want more than a URL and a bearer
//! key: `auth = "api-key"`, static `query` parameters (`api-version`) and
//! extra `headers`, on `openai-chat`, over real HTTP.

use std::collections::BTreeMap;

use maniac_server::providers::ProviderConfig;
use maniac_server::providers::http_options::Auth;
use maniac_server::providers::openai_chat::ChatConfig;
use maniac_tests::harness::{Gateway, Options};
use maniac_tests::upstream::FakeUpstream;
use serde_json::{Value, json};

/// Set for every test process by `.cargo/config.toml` `[env]`.
const KEY_ENV: &str = "MANIAC_TEST_UPSTREAM_KEY";

#[tokio::test]
async fn an_azure_style_chat_upstream_gets_its_api_key_header_query_and_headers()
 {
    let key = std::env::var(KEY_ENV).expect("set by .cargo/config.toml");
    let up = FakeUpstream::start().await;
    let Some(gw) = Gateway::start_with(Options {
        extra_providers: vec![(
            "azure".into(),
            ProviderConfig::OpenAiChat(ChatConfig {
                api_key_env: Some(KEY_ENV.into()),
                auth: Auth::ApiKey,
                query: BTreeMap::from([(
                    "api-version".to_string(),
                    "2024-10-21".to_string(),
                )]),
                headers: BTreeMap::from([(
                    "x-ms-client".to_string(),
                    "maniac".to_string(),
                )]),
                ..ChatConfig::at(up.base_url())
            }),
        )],
        ..Options::default()
    })
    .await
    else {
        return;
    };
    for (path, body) in [
        (
            "/v1/chat/completions",
            json!({"model": "azure/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
        ),
        (
            "/v1/responses",
            json!({"model": "azure/gpt-4o", "input": "FAULT:401 hi", "store": false}),
        ),
    ] {
        let rsp = gw.post(&gw.key, path, &body).await;
        let text = rsp.text().await.unwrap();
        assert!(!text.contains(&key), "the key leaked: {text}");
    }
    let reqs = up.requests();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!(r.path, "/v1/chat/completions");
        assert_eq!(r.query.as_deref(), Some("api-version=2024-10-21"));
        assert_eq!(r.headers.get("api-key"), Some(&key));
        assert_eq!(
            r.headers.get("x-ms-client").map(String::as_str),
            Some("maniac")
        );
        assert!(
            r.authorization.is_none(),
            "no bearer header with api-key auth"
        );
    }
    let v: Value = gw
        .post(
            &gw.key,
            "/v1/chat/completions",
            &json!({"model": "azure/gpt-4o", "messages": [{"role": "user", "content": "again"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "You said: again");
}

#[test]
fn a_header_that_is_not_valid_is_a_config_error_naming_it() {
    let c = ChatConfig {
        headers: BTreeMap::from([("bad name".to_string(), "v".to_string())]),
        ..ChatConfig::at("http://127.0.0.1:9/v1")
    };
    let err = ProviderConfig::OpenAiChat(c)
        .build("az", &Default::default())
        .err()
        .unwrap();
    assert!(err.contains("providers.az.headers.bad name"), "{err}");
}
