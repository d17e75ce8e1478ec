//! Both receivers over loopback HTTP: what they answer, and what `GET /received` then shows.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use bytes::Bytes;
use hookshape_signing::Secret;
use http_body_util::{BodyExt, Full};
use hyper::{Method, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use receivers::gate::GateConfig;
use receivers::slack::SlackReceiver;
use receivers::zapier::ZapierReceiver;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const SLACK_HOOK: &str = "/services/T000/B000/XXXX";
const ZAPIER_HOOK: &str = "/hooks/catch/123456/abcdef/";

struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
    client: Client<HttpConnector, Full<Bytes>>,
}

struct Reply {
    status: StatusCode,
    content_type: String,
    body: Bytes,
}

impl Reply {
    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

impl Server {
    async fn start(router: Router) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Server {
            addr,
            task,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = self
            .client
            .request(request.body(Full::new(body.into())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            content_type,
            body,
        }
    }

    async fn post_json(&self, path: &str, body: &str) -> Reply {
        let headers = [("content-type", "application/json".to_owned())];
        self.request(Method::POST, path, &headers, body.to_owned())
            .await
    }

    async fn received(&self) -> Vec<Value> {
        let reply = self.request(Method::GET, "/received", &[], "").await;
        assert_eq!(reply.status, StatusCode::OK);
        serde_json::from_slice(&reply.body).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn signed_headers(secret: &Secret, id: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    vec![
        ("content-type", "application/json".to_owned()),
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", now.to_string()),
        (
            "webhook-signature",
            hookshape_signing::sign(secret, id, now, body),
        ),
    ]
}

async fn slack(config: GateConfig) -> Server {
    Server::start(SlackReceiver::new(config).router()).await
}

async fn zapier(config: GateConfig) -> Server {
    Server::start(ZapierReceiver::new(config).router()).await
}

#[tokio::test]
async fn slack_posts_a_message_and_records_it() {
    let server = slack(GateConfig::default()).await;
    let body = r#"{"text":"Revenue crossed 100k","blocks":[{"type":"section","text":{"type":"mrkdwn","text":"*Revenue*"}}]}"#;
    let headers = [
        ("content-type", "application/json".to_owned()),
        ("user-agent", "hookshape/0.1.0".to_owned()),
        ("webhook-id", "evt_1".to_owned()),
        ("x-team", "data".to_owned()),
    ];
    let reply = server
        .request(Method::POST, SLACK_HOOK, &headers, body)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "ok");
    assert!(reply.content_type.starts_with("text/plain"));

    let received = server.received().await;
    assert_eq!(received.len(), 1);
    let entry = &received[0];
    assert_eq!(entry["seq"], 1);
    assert_eq!(entry["method"], "POST");
    assert_eq!(entry["path"], SLACK_HOOK);
    assert_eq!(entry["signature"], "not_checked");
    assert_eq!(entry["message"]["text"], "Revenue crossed 100k");
    assert_eq!(entry["message"]["blocks"][0]["type"], "section");
    assert_eq!(entry["headers"]["user-agent"], "hookshape/0.1.0");
    assert_eq!(entry["headers"]["webhook-id"], "evt_1");
    assert_eq!(entry["headers"]["x-team"], "data");
    assert!(entry["headers"].get("host").is_none());
}

#[tokio::test]
async fn slack_refuses_what_slack_refuses() {
    let server = slack(GateConfig::default()).await;
    let cases = [
        ("not json", StatusCode::BAD_REQUEST, "invalid_payload"),
        (r#"["a"]"#, StatusCode::BAD_REQUEST, "invalid_payload"),
        ("{}", StatusCode::BAD_REQUEST, "no_text"),
        (r##"{"channel":"#x"}"##, StatusCode::BAD_REQUEST, "no_text"),
        (
            r#"{"blocks":[{"text":"x"}]}"#,
            StatusCode::BAD_REQUEST,
            "invalid_blocks",
        ),
        (
            r#"{"text":"x","blocks":{}}"#,
            StatusCode::BAD_REQUEST,
            "invalid_blocks",
        ),
    ];
    for (body, status, code) in cases {
        let reply = server.post_json(SLACK_HOOK, body).await;
        assert_eq!((reply.status, reply.text()), (status, code), "{body}");
        assert!(reply.content_type.starts_with("text/plain"));
    }

    for path in ["/", "/services/T000/B000", "/hooks/catch/1/2/"] {
        let reply = server.post_json(path, r#"{"text":"x"}"#).await;
        assert_eq!(
            (reply.status, reply.text()),
            (StatusCode::NOT_FOUND, "no_service"),
            "{path}"
        );
    }

    let huge = format!(
        r#"{{"text":"{}"}}"#,
        "x".repeat(receivers::slack::MAX_BODY_BYTES)
    );
    let reply = server.post_json(SLACK_HOOK, &huge).await;
    assert_eq!(
        (reply.status, reply.text()),
        (StatusCode::PAYLOAD_TOO_LARGE, "request_too_large")
    );
    assert!(
        server.received().await.is_empty(),
        "nothing refused is recorded"
    );
}

#[tokio::test]
async fn slack_reads_form_payloads() {
    let server = slack(GateConfig::default()).await;
    let headers = [(
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    )];
    let reply = server
        .request(
            Method::POST,
            SLACK_HOOK,
            &headers,
            "payload=%7B%22text%22%3A%22from+a+form%22%7D",
        )
        .await;
    assert_eq!((reply.status, reply.text()), (StatusCode::OK, "ok"));
    assert_eq!(server.received().await[0]["message"]["text"], "from a form");
}

#[tokio::test]
async fn slack_fails_the_first_requests_on_request() {
    let server = slack(GateConfig {
        fail_first: 2,
        ..GateConfig::default()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            server
                .post_json(SLACK_HOOK, r#"{"text":"retry me"}"#)
                .await
                .status,
        );
    }
    assert_eq!(
        statuses,
        [
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::OK
        ]
    );
    let received = server.received().await;
    assert_eq!(received.len(), 1, "only the accepted attempt is recorded");
    assert_eq!(received[0]["seq"], 1);
}

#[tokio::test]
async fn slack_checks_signatures_when_given_a_secret() {
    let secret = Secret::generate();
    let server = slack(GateConfig {
        secret: Some(secret.clone()),
        ..GateConfig::default()
    })
    .await;
    let body = r#"{"text":"signed"}"#;

    let unsigned = server.post_json(SLACK_HOOK, body).await;
    assert_eq!(
        (unsigned.status, unsigned.text()),
        (StatusCode::UNAUTHORIZED, "invalid_signature")
    );
    let forged = signed_headers(&Secret::generate(), "evt_1", body.as_bytes());
    let reply = server
        .request(Method::POST, SLACK_HOOK, &forged, body)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    let good = signed_headers(&secret, "evt_1", body.as_bytes());
    let reply = server.request(Method::POST, SLACK_HOOK, &good, body).await;
    assert_eq!((reply.status, reply.text()), (StatusCode::OK, "ok"));
    let received = server.received().await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["signature"], "verified");
}

#[tokio::test]
async fn received_can_be_cleared() {
    let server = slack(GateConfig::default()).await;
    server.post_json(SLACK_HOOK, r#"{"text":"one"}"#).await;
    let reply = server.request(Method::DELETE, "/received", &[], "").await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(server.received().await.is_empty());
}

#[tokio::test]
async fn zapier_catches_a_hook_and_stores_flat_fields() {
    let server = zapier(GateConfig::default()).await;
    let body = r#"{"event":"report_run_completed","report":{"name":"Revenue","owner":{"email":"a@b.c"}},"rows":[{"revenue":120000}]}"#;
    let reply = server
        .post_json(&format!("{ZAPIER_HOOK}?source=hookshape"), body)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type, "application/json");
    let answer = reply.json();
    assert_eq!(answer["status"], "success");
    assert_eq!(answer["attempt"], answer["request_id"]);
    assert_eq!(answer["id"].as_str().unwrap().len(), 36);

    let received = server.received().await;
    assert_eq!(received.len(), 1);
    let entry = &received[0];
    assert_eq!(entry["id"], answer["id"]);
    assert_eq!(entry["request_id"], answer["request_id"]);
    assert_eq!(entry["query"], "source=hookshape");
    assert_eq!(entry["body"]["report"]["name"], "Revenue");
    assert_eq!(
        entry["fields"],
        json!({
            "event": "report_run_completed",
            "report__name": "Revenue",
            "report__owner__email": "a@b.c",
            "rows": [{"revenue": 120000}],
            "source": "hookshape",
        })
    );
}

#[tokio::test]
async fn zapier_is_lenient_about_what_it_is_sent() {
    let server = zapier(GateConfig::default()).await;
    let form = [(
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    )];
    let cases: [(&[(&str, String)], &str); 4] = [
        (&form, "first_name=Bryan&age=27"),
        (&[], "{this is not json"),
        (&[], "[{\"n\":1},{\"n\":2}]"),
        (&[], "42"),
    ];
    for (headers, body) in cases {
        let reply = server
            .request(Method::POST, "/hooks/catch/1/abc", headers, body)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{body}");
        assert_eq!(reply.json()["status"], "success", "{body}");
    }
    let reply = server
        .request(Method::GET, "/hooks/catch/1/abc/?from=get", &[], "")
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    let received = server.received().await;
    let fields: Vec<&Value> = received.iter().map(|e| &e["fields"]).collect();
    assert_eq!(
        fields,
        [
            &json!({"first_name": "Bryan", "age": "27"}),
            &json!({}),
            &json!({"n": 1}),
            &json!({"n": 2}),
            &json!({"value": 42}),
            &json!({"from": "get"}),
        ]
    );
    assert_eq!(received[1]["body"], "{this is not json");
    assert_eq!(
        received[2]["request_id"], received[3]["request_id"],
        "an array's items come from one request"
    );
    assert_ne!(received[2]["id"], received[3]["id"]);
    assert_eq!(received[5]["method"], "GET");
}

#[tokio::test]
async fn zapier_refuses_other_paths_and_oversized_bodies() {
    let server = zapier(GateConfig::default()).await;
    let reply = server.post_json("/hooks/other/1/abc/", "{}").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json()["status"], "error");

    let huge = vec![b' '; receivers::zapier::MAX_BODY_BYTES + 1];
    let reply = server.request(Method::POST, ZAPIER_HOOK, &[], huge).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(server.received().await.is_empty());
}

#[tokio::test]
async fn zapier_fails_first_and_checks_signatures() {
    let secret = Secret::generate();
    let server = zapier(GateConfig {
        secret: Some(secret.clone()),
        fail_first: 1,
        ..GateConfig::default()
    })
    .await;
    let body = r#"{"event":"member_joined"}"#;
    let good = signed_headers(&secret, "evt_9", body.as_bytes());

    let first = server.request(Method::POST, ZAPIER_HOOK, &good, body).await;
    assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE);
    let unsigned = server.post_json(ZAPIER_HOOK, body).await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unsigned.json()["status"], "error");
    let retried = server.request(Method::POST, ZAPIER_HOOK, &good, body).await;
    assert_eq!(retried.status, StatusCode::OK);

    let received = server.received().await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["signature"], "verified");
    assert_eq!(received[0]["headers"]["webhook-id"], "evt_9");
}
