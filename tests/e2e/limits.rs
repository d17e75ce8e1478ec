//! The `[server]` connection limits against slow, idle and surplus clients
//! (slowloris in both forms: a header never finished, a body trickled a
//! byte a second), on raw loopback sockets so that the test controls every
//! byte and every pause. Each limit is set small in the config; each test
//! checks that the offending connection is closed within its limit, not
//! before, and that other clients are served meanwhile.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{ADMIN, ConfigBuilder, Server};

/// How much later than its limit a connection may be closed: the server's
/// timers are exact, but this machine may be busy.
const SLACK: Duration = Duration::from_secs(4);

/// Deadline of an exchange that should be answered at once.
const PROMPT: Duration = Duration::from_secs(10);

/// A keep-alive `GET /healthz`.
const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n";

fn seconds(n: u64) -> String {
    format!("\"{n}s\"")
}

async fn connect(addr: SocketAddr) -> TcpStream {
    tokio::time::timeout(PROMPT, TcpStream::connect(addr))
        .await
        .expect("connecting in time")
        .expect("connecting to the server")
}

/// Reads until the server closes the connection (a reset counts as closed),
/// at most for `limit`; returns what arrived.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration, what: &str) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "{what}: still open after {limit:?}; received {:?}",
                String::from_utf8_lossy(&received)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&received).into_owned(),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one response (head and `content-length` body) from a connection
/// that stays open; panics unless it arrives within `limit`.
async fn read_response(stream: &mut TcpStream, limit: Duration) -> String {
    let exchange = async {
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&received).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text[..end]
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().expect("a numeric content-length"))
                    })
                    .unwrap_or(0);
                if received.len() >= end + 4 + length {
                    return text;
                }
            }
            let n = stream.read(&mut buf).await.expect("reading a response");
            assert!(n > 0, "closed before a whole response: {text:?}");
            received.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(limit, exchange)
        .await
        .unwrap_or_else(|_| panic!("no whole response within {limit:?}"))
}

/// A `GET /healthz` on a connection of its own, answered 200.
async fn assert_served(addr: SocketAddr, context: &str) {
    let mut stream = connect(addr).await;
    stream.write_all(HEALTHZ).await.expect("sending a request");
    let response = read_response(&mut stream, PROMPT).await;
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "{context}: another client got {response:?}"
    );
}

/// Asserts a connection opened at `since` was closed after `limit`, within
/// [`SLACK`].
fn assert_closed_after(since: Instant, limit: Duration, what: &str) {
    let elapsed = since.elapsed();
    assert!(
        elapsed >= limit && elapsed < limit + SLACK,
        "{what}: closed after {elapsed:?}, expected {limit:?} (+ up to {SLACK:?})"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slowloris_partial_header_then_silence_is_dropped_after_header_read_timeout() {
    let limit = Duration::from_secs(1);
    let config = ConfigBuilder::new().server("header_read_timeout", &seconds(1));
    let server = Server::start(&config.build()).await;
    let addr = server.addr();

    let opened = Instant::now();
    let mut partial = connect(addr).await;
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nx-slow: ")
        .await
        .expect("sending half a header");
    let mut silent = connect(addr).await;

    assert_served(addr, "while two headers are pending").await;
    let received = read_until_closed(&mut partial, limit + SLACK, "a half-sent header").await;
    assert_closed_after(opened, limit, "a half-sent header");
    assert_eq!(received, "", "a request never completed is never answered");
    read_until_closed(&mut silent, SLACK, "a connection that sent nothing").await;
    assert_closed_after(opened, limit, "a connection that sent nothing");
    assert_served(addr, "after the slow clients were dropped").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slowloris_body_trickled_a_byte_a_second_gets_408_within_request_timeout() {
    // Between two bytes, so the cut-off does not race a byte's arrival.
    let limit = Duration::from_millis(2500);
    let config = ConfigBuilder::new().server("request_timeout", "\"2500ms\"");
    let server = Server::start(&config.build()).await;
    let addr = server.addr();

    let stream = connect(addr).await;
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST /v1/tenants/acme/events HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n",
        ADMIN.unwrap()
    );
    writer
        .write_all(head.as_bytes())
        .await
        .expect("sending the header");
    let sent = Instant::now();
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            if writer.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });

    assert_served(addr, "while a body trickles in").await;
    let mut answer = Vec::new();
    tokio::time::timeout(limit + SLACK, reader.read_to_end(&mut answer))
        .await
        .unwrap_or_else(|_| panic!("a trickled body: still open after {:?}", limit + SLACK))
        .ok();
    trickle.abort();
    assert_closed_after(sent, limit, "a trickled body");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer:?}"
    );
    let body = &answer[answer.find("\r\n\r\n").expect("a whole head") + 4..];
    let body: serde_json::Value = serde_json::from_str(body).expect("a JSON error body");
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert_served(addr, "after the trickled request was cut off").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_keep_alive_connection_is_closed_after_idle_timeout_not_header_read_timeout() {
    let idle = Duration::from_secs(3);
    let config = ConfigBuilder::new()
        .server("header_read_timeout", &seconds(1))
        .server("idle_timeout", &seconds(3));
    let server = Server::start(&config.build()).await;

    let mut stream = connect(server.addr()).await;
    stream.write_all(HEALTHZ).await.expect("sending a request");
    let first = read_response(&mut stream, PROMPT).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first:?}");

    // Idle past the header timeout but within the idle one: still served.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stream.write_all(HEALTHZ).await.expect("sending a request");
    let second = read_response(&mut stream, PROMPT).await;
    assert!(second.starts_with("HTTP/1.1 200"), "{second:?}");
    let answered = Instant::now();

    let received = read_until_closed(&mut stream, idle + SLACK, "an idle connection").await;
    assert_closed_after(answered, idle, "an idle connection");
    assert_eq!(received, "", "nothing is sent on an idle connection");
}

#[tokio::test(flavor = "multi_thread")]
async fn past_max_connections_a_new_connection_waits_until_one_closes() {
    let config = ConfigBuilder::new().server("max_connections", "2");
    let server = Server::start(&config.build()).await;
    let addr = server.addr();

    // Two kept-alive connections, each answered, so both hold a slot.
    let mut first = connect(addr).await;
    let mut second = connect(addr).await;
    for held in [&mut first, &mut second] {
        held.write_all(HEALTHZ).await.expect("sending a request");
        let response = read_response(held, PROMPT).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response:?}");
    }

    let mut third = connect(addr).await;
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .expect("sending a request");
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_secs(1), third.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "a third connection was answered past max_connections = 2: {early:?}"
    );

    // The second one still works while the third waits.
    second.write_all(HEALTHZ).await.expect("sending a request");
    let response = read_response(&mut second, PROMPT).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response:?}");

    drop(first);
    let answer = read_until_closed(&mut third, PROMPT, "the waiting connection").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}

#[tokio::test]
async fn input_caps_subscriptions_per_tenant_and_headers_answer_422_and_store_nothing() {
    let config = ConfigBuilder::new().server("max_subscriptions_per_tenant", "2");
    let server = Server::start(&config.build()).await;
    let url = "http://127.0.0.1:9/hook";
    for _ in 0..2 {
        server
            .create_subscription("acme", &serde_json::json!({"url": url, "events": ["*"]}))
            .await;
    }
    let path = "/v1/tenants/acme/subscriptions";
    let (status, body) = server
        .post(
            path,
            ADMIN,
            &serde_json::json!({"url": url, "events": ["*"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "too_many_subscriptions");
    // Another tenant has its own allowance.
    server
        .create_subscription("other", &serde_json::json!({"url": url, "events": ["*"]}))
        .await;

    let headers = |n: usize, len: usize| -> serde_json::Value {
        (0..n)
            .map(|i| (format!("x-h{i}"), serde_json::Value::from("v".repeat(len))))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    for (n, len, code) in [
        (65, 1, "too_many_headers"),
        (10_000, 1, "too_many_headers"),
        (1, 9 << 10, "invalid_header"),
    ] {
        let (status, body) = server
            .post(
                "/v1/tenants/third/subscriptions",
                ADMIN,
                &serde_json::json!({"url": url, "events": ["*"], "headers": headers(n, len)}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{n} x {len}: {body}"
        );
        assert_eq!(body["error"]["code"], code, "{n} x {len}: {body}");
    }
    assert!(
        server.subscription_ids("third").await.is_empty(),
        "nothing stored"
    );
    assert_eq!(server.subscription_ids("acme").await.len(), 2);
    // 64 headers of 8 KiB each are within the caps.
    server
        .create_subscription(
            "third",
            &serde_json::json!({"url": url, "events": ["*"], "headers": headers(64, 8 << 10)}),
        )
        .await;
}
