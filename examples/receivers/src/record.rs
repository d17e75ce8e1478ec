//! The in-memory log of accepted requests that `GET /received` shows, in arrival order, so tests
//! and the demo can see exactly what a receiver took in.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, Method, Uri, header};
use parking_lot::Mutex;
use serde::Serialize;

use crate::gate::SignatureCheck;

/// Headers that describe the connection rather than the message; not recorded.
const SKIPPED_HEADERS: [header::HeaderName; 7] = [
    header::HOST,
    header::CONTENT_LENGTH,
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::UPGRADE,
    header::ACCEPT_ENCODING,
];

/// One accepted request, with what the service made of it in `detail`.
#[derive(Debug, Clone, Serialize)]
pub struct Received<T> {
    /// 1 for the first accepted request, and so on.
    pub seq: u64,
    /// Unix time of arrival, in milliseconds.
    pub received_at_ms: u64,
    /// The HTTP method.
    pub method: String,
    /// The request path.
    pub path: String,
    /// The query string, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Request headers by lowercase name; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// Whether the signature was verified.
    pub signature: SignatureCheck,
    /// What the service made of the body.
    #[serde(flatten)]
    pub detail: T,
}

/// The request's envelope, captured before the body is interpreted.
#[derive(Debug, Clone)]
pub struct Envelope {
    method: Method,
    uri: Uri,
    headers: BTreeMap<String, String>,
    signature: SignatureCheck,
}

impl Envelope {
    /// Captures a request's envelope, leaving out the connection headers.
    pub fn new(method: &Method, uri: &Uri, headers: &HeaderMap, signature: SignatureCheck) -> Self {
        let mut kept: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in headers {
            if SKIPPED_HEADERS.contains(name) {
                continue;
            }
            let value = String::from_utf8_lossy(value.as_bytes());
            kept.entry(name.as_str().to_owned())
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(&value);
                })
                .or_insert_with(|| value.into_owned());
        }
        Envelope {
            method: method.clone(),
            uri: uri.clone(),
            headers: kept,
            signature,
        }
    }
}

/// Accepted requests, oldest first.
#[derive(Debug)]
pub struct Recorder<T> {
    entries: Mutex<Vec<Received<T>>>,
}

impl<T> Default for Recorder<T> {
    fn default() -> Self {
        Recorder {
            entries: Mutex::new(Vec::new()),
        }
    }
}

impl<T: Clone> Recorder<T> {
    /// Appends one entry per detail, all sharing the envelope.
    pub fn record(&self, envelope: &Envelope, details: impl IntoIterator<Item = T>) {
        let received_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX));
        let mut entries = self.entries.lock();
        for detail in details {
            let seq = entries.len() as u64 + 1;
            entries.push(Received {
                seq,
                received_at_ms,
                method: envelope.method.to_string(),
                path: envelope.uri.path().to_owned(),
                query: envelope.uri.query().map(str::to_owned),
                headers: envelope.headers.clone(),
                signature: envelope.signature,
                detail,
            });
        }
    }

    /// Everything recorded so far.
    pub fn entries(&self) -> Vec<Received<T>> {
        self.entries.lock().clone()
    }

    /// Forgets everything recorded.
    pub fn clear(&self) {
        self.entries.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn keeps_message_headers_in_order_of_arrival() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:1"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("2"));
        headers.insert("webhook-id", HeaderValue::from_static("evt_1"));
        headers.append("x-team", HeaderValue::from_static("data"));
        headers.append("x-team", HeaderValue::from_static("ops"));
        let uri: Uri = "/hooks/catch/1/abc/?a=1".parse().unwrap();
        let envelope = Envelope::new(&Method::POST, &uri, &headers, SignatureCheck::NotChecked);

        let recorder = Recorder::default();
        recorder.record(&envelope, ["first", "second"]);
        recorder.record(&envelope, ["third"]);
        let entries = recorder.entries();
        assert_eq!(
            entries
                .iter()
                .map(|e| (e.seq, e.detail))
                .collect::<Vec<_>>(),
            [(1, "first"), (2, "second"), (3, "third")]
        );
        let first = &entries[0];
        assert_eq!(first.path, "/hooks/catch/1/abc/");
        assert_eq!(first.query.as_deref(), Some("a=1"));
        assert_eq!(
            first.headers,
            BTreeMap::from([
                ("webhook-id".to_owned(), "evt_1".to_owned()),
                ("x-team".to_owned(), "data, ops".to_owned()),
            ])
        );

        recorder.clear();
        assert!(recorder.entries().is_empty());
    }
}
