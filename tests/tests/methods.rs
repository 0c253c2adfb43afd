//! Wrong methods on known paths: every method `openapi.json` does not list
//! for a path is a 405 in the OpenAI error shape whose `Allow` lists
//! exactly the methods it does (read from the checked-in spec, so a new
//! operation without its 405s fails here).

use maniac_tests::gateway;
use maniac_tests::harness::*;
use serde_json::Value;

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The spec's paths with their methods, parameters filled in.
fn spec_paths() -> Vec<(String, Vec<String>)> {
    let spec: Value = serde_json::from_str(include_str!("../../openapi.json"))
        .expect("openapi.json parses");
    spec["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, item)| {
            let listed = METHODS
                .iter()
                .filter(|m| item.get(m.to_lowercase()).is_some())
                .map(|m| m.to_string())
                .collect();
            let concrete = path
                .replace("{response_id}", "resp_0123")
                .replace("{completion_id}", "chatcmpl-0123")
                .replace("{model}", "echo%2Fecho");
            (concrete, listed)
        })
        .collect()
}

async fn send(
    gw: &Gateway,
    method: &str,
    path: &str,
    body: &'static str,
) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    http()
        .request(method, gw.url(path))
        .bearer_auth(&gw.key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_unlisted_method_is_a_405_naming_the_listed_ones() {
    let gw = gateway!();
    let mut checked = 0;
    let mut paths = spec_paths();
    // The unencoded form of a model id, served beside the spec's.
    paths.push(("/v1/models/echo/echo".into(), vec!["GET".into()]));
    paths.push(("/healthz".into(), vec!["GET".into()]));
    paths.push(("/readyz".into(), vec!["GET".into()]));
    for (path, listed) in paths {
        assert!(!listed.is_empty(), "{path}");
        for method in METHODS.iter().filter(|m| !listed.iter().any(|l| l == *m))
        {
            // Any body: the method alone decides.
            let rsp = send(&gw, method, &path, "not json").await;
            assert_eq!(rsp.status(), 405, "{method} {path}");
            let allow = rsp.headers()["allow"].to_str().unwrap().to_string();
            assert_eq!(allow, listed.join(", "), "{method} {path}");
            let body: Value = rsp.json().await.unwrap();
            let e = &body["error"];
            assert_eq!(e["type"], "invalid_request_error", "{method} {path}");
            assert_eq!(e["code"], "method_not_allowed");
            assert!(e["message"].as_str().unwrap().contains(*method));
            assert!(e.get("param").is_some());
            checked += 1;
        }
    }
    assert!(checked >= 54, "only {checked} cases");
}

#[tokio::test]
async fn listed_methods_are_never_405() {
    let gw = gateway!();
    for (path, listed) in spec_paths() {
        for method in &listed {
            let rsp = send(&gw, method, &path, "{}").await;
            assert_ne!(rsp.status(), 405, "{method} {path}");
        }
    }
}
