//! `GET /openapi.json`: served without a token, and every operation it
//! documents is served by the running server (each answers 401 without a
//! token, not 404 or 405).

use axum::http::{Method, StatusCode};
use serde_json::Value;

use crate::harness::{ConfigBuilder, Server, assert_error};

/// A path of the document with its parameters filled in.
fn filled(path: &str) -> String {
    let id = if path.contains("/events/") {
        "evt_01ARZ3NDEKTSV4RRFFQ69G5FAV"
    } else if path.contains("/attempts/{id}") {
        "att_01ARZ3NDEKTSV4RRFFQ69G5FAV"
    } else if path.starts_with("/v1/plugins/") {
        "some-plugin"
    } else {
        "sub_1"
    };
    path.replace("{tenant}", "acme").replace("{id}", id)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_operation_is_served() {
    let server = Server::start(&ConfigBuilder::new().build()).await;
    let reply = server
        .request(Method::GET, "/openapi.json", None, None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.headers["content-type"], "application/json");
    let doc: Value = reply.json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let url = filled(path);
            let reply = server.request(method.clone(), &url, None, None).await;
            let got = (reply.status, reply.json());
            assert_error(&got, StatusCode::UNAUTHORIZED, &format!("{method} {url}"));
            operations += 1;
        }
    }
    assert_eq!(operations, 16, "the 16 operations of the /v1 API");
}
