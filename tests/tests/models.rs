//! End-to-end: `GET /v1/models` and `GET /v1/models/{model}` over real
//! HTTP: configured models as `provider/model`, the id's `/` percent-encoded
//! or raw, OpenAI-shaped 404s and 401s.

use maniac_tests::gateway;
use serde_json::Value;

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
