//! Receivers that misbehave: each fault ends as a recorded failed attempt
//! within `delivery.timeout` and is retried, and none of them holds up
//! another subscription's deliveries (a subscription gets at most
//! `max_in_flight_per_subscription` of the in-flight slots).

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{ConfigBuilder, Receiver, Server, eventually};

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Reads the request and never answers.
    Hang,
    /// Starts an answer, then resets the connection.
    ResetMidResponse,
    /// Answers 503 with a 100 MiB body.
    HugeBody,
    /// Sends its answer one byte every 300 ms.
    Trickle,
    /// Closes the connection before any status line.
    CloseBeforeStatus,
}

const FAULTS: [Fault; 5] = [
    Fault::Hang,
    Fault::ResetMidResponse,
    Fault::HugeBody,
    Fault::Trickle,
    Fault::CloseBeforeStatus,
];

/// Reads one request's header and body (by `content-length`).
async fn read_request(stream: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let Ok(n) = stream.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return;
            }
        }
    }
}

async fn misbehave(mut stream: TcpStream, fault: Fault) {
    read_request(&mut stream).await;
    match fault {
        Fault::Hang => tokio::time::sleep(Duration::from_secs(60)).await,
        Fault::ResetMidResponse => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
                .await;
            let _ = stream.set_zero_linger();
        }
        Fault::HugeBody => {
            let head = format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-length: {}\r\n\r\n",
                100 << 20
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let zeros = vec![0u8; 64 << 10];
            for _ in 0..1600 {
                if stream.write_all(&zeros).await.is_err() {
                    break;
                }
            }
        }
        Fault::Trickle => {
            for byte in b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n" {
                if stream.write_all(&[*byte]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        Fault::CloseBeforeStatus => {}
    }
}

/// A loopback receiver with one fault; returns its URL.
async fn faulty_receiver(fault: Fault) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(misbehave(stream, fault));
        }
    });
    format!("http://{addr}/hook")
}

#[tokio::test]
async fn misbehaving_receivers_fail_within_the_timeout_are_retried_and_delay_no_one_else() {
    let config = ConfigBuilder::new()
        .delivery("timeout", "\"2s\"")
        .retry_schedule(&["200ms"])
        .delivery("max_in_flight", "16")
        .delivery("max_in_flight_per_subscription", "2");
    let server = Server::start(&config.build()).await;
    let healthy = Receiver::start().await;
    server
        .create_subscription(
            "acme",
            &json!({"url": healthy.url(), "events": ["healthy"]}),
        )
        .await;
    let mut subs = Vec::new();
    for fault in FAULTS {
        let url = faulty_receiver(fault).await;
        let sub = server
            .create_subscription(
                "acme",
                &json!({"url": url, "events": [format!("{fault:?}")]}),
            )
            .await;
        subs.push((fault, sub["id"].as_str().unwrap().to_owned()));
    }
    // More deliveries per faulty receiver than its share of the slots.
    for fault in FAULTS {
        for _ in 0..6 {
            server
                .publish(
                    "acme",
                    &json!({"type": format!("{fault:?}"), "payload": {}}),
                )
                .await;
        }
    }
    // Meanwhile the healthy subscription's deliveries arrive at once.
    for i in 0..3 {
        let posted = Instant::now();
        server
            .publish("acme", &json!({"type": "healthy", "payload": {"i": i}}))
            .await;
        eventually(
            Duration::from_secs(1),
            "the healthy delivery, within a second",
            || async { (healthy.count() > i).then_some(()) },
        )
        .await;
        assert!(posted.elapsed() < Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(700)).await;
    }

    for (fault, sub) in &subs {
        let attempts = eventually(Duration::from_secs(20), "a retried failure", || async {
            let attempts = server.attempts("acme", sub).await;
            attempts
                .iter()
                .any(|a| a["attempt"] == 2)
                .then_some(attempts)
        })
        .await;
        for a in &attempts {
            assert_eq!(a["outcome"], "failed", "{fault:?}: {a}");
            let took = a["duration_ms"].as_u64().unwrap();
            assert!(
                took <= 3000,
                "{fault:?} took {took} ms, past the 2 s timeout: {a}"
            );
        }
        if let Fault::HugeBody = fault {
            let a = &attempts[0];
            assert_eq!(a["status_code"], 503, "{a}");
            assert!(a["response_body"].as_str().unwrap().len() <= 64 << 10);
        }
    }
}
