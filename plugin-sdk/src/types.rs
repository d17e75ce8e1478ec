//! The values a transform receives and returns, as plain Rust types.
//!
//! They mirror the WIT records one to one but own their data, have helpers
//! for the common cases (JSON payloads, typed plugin config) and are
//! constructible on any target, so plugin logic can be unit-tested natively.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

/// The event being delivered, as ingested by hookshape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// hookshape's id (`evt_...`), also sent as the `webhook-id` header.
    pub id: String,
    /// The tenant (workspace) the event was posted to.
    pub tenant: String,
    /// The source's event type, e.g. `project.published`.
    pub event_type: String,
    /// Ingest time, RFC 3339 UTC.
    pub timestamp: String,
    /// The payload's media type, e.g. `application/json`.
    pub content_type: String,
    /// JSON text for JSON content types, else the document itself.
    pub payload: Vec<u8>,
}

impl Event {
    /// True when the content type is JSON (`application/json`, `...+json`),
    /// parameters ignored.
    pub fn is_json(&self) -> bool {
        is_json_media_type(&self.content_type)
    }

    /// The payload decoded as `T`; the error names the offending field.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        decode_json(&self.payload, "event payload")
    }

    /// The payload as untyped JSON.
    pub fn json_value(&self) -> Result<serde_json::Value, Error> {
        self.json()
    }

    /// The payload as UTF-8 text (XML, CSV, JSON text, ...).
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.payload)
            .map_err(|e| Error::msg(format!("the event payload is not UTF-8 text: {e}")))
    }

    /// The payload as the ingest body's `payload` field held it: parsed JSON
    /// for a JSON content type (see [`is_json`](Self::is_json)), else the
    /// document (XML, CSV, ...) as a JSON string. One value for any event,
    /// e.g. to hand a template engine or to flatten.
    ///
    /// Fails as [`json_value`](Self::json_value) does when a JSON payload
    /// does not parse, and as [`text`](Self::text) does when a document is
    /// not UTF-8.
    ///
    /// ```
    /// use hookshape_plugin_sdk::testing::event;
    /// use serde_json::json;
    ///
    /// let order = event("order.paid", "application/json", r#"{"id": 7}"#);
    /// assert_eq!(order.payload_value().unwrap(), json!({"id": 7}));
    /// let xml = event("order.paid", "application/xml", "<order id=\"7\"/>");
    /// assert_eq!(xml.payload_value().unwrap(), json!("<order id=\"7\"/>"));
    /// ```
    pub fn payload_value(&self) -> Result<serde_json::Value, Error> {
        if self.is_json() {
            self.json_value()
        } else {
            Ok(serde_json::Value::String(self.text()?.to_owned()))
        }
    }
}

/// The subscription the transform runs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The subscription's id.
    pub id: String,
    /// Where the request will be POSTed.
    pub url: String,
    /// The subscription's `plugin_config` as JSON text, `{}` when unset.
    pub config: String,
}

impl Subscription {
    /// The plugin config decoded as `T`; the error names the offending field,
    /// e.g. ``invalid plugin config at `threshold`: invalid type: string "x", expected f64``.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, Error> {
        decode_json(self.config.as_bytes(), "plugin config")
    }
}

/// What to POST to the subscription's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The request body.
    pub body: Vec<u8>,
    /// `application/json` is sent when this is `None`.
    pub content_type: Option<String>,
    /// Extra headers. The host refuses `webhook-*`, `content-length`, `host`
    /// and `transfer-encoding`, and any name or value that is not valid HTTP.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// A request whose body is `v` as JSON, with content type `application/json`.
    pub fn json<T: Serialize>(v: &T) -> Result<Request, Error> {
        Ok(Request::new(serde_json::to_vec(v)?, "application/json"))
    }

    /// A request with this body and content type.
    pub fn new(body: impl Into<Vec<u8>>, content_type: impl Into<String>) -> Request {
        Request {
            body: body.into(),
            content_type: Some(content_type.into()),
            headers: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// What the transform decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Send this request.
    Deliver(Request),
    /// Send nothing; the delivery ends as `skipped` with this reason.
    Skip(String),
}

impl Outcome {
    /// Send nothing, for this reason.
    pub fn skip(reason: impl Into<String>) -> Outcome {
        Outcome::Skip(reason.into())
    }
}

impl From<Request> for Outcome {
    fn from(request: Request) -> Outcome {
        Outcome::Deliver(request)
    }
}

/// True for `application/json` and `...+json`, parameters ignored.
pub fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.to_ascii_lowercase().ends_with("+json")
}

/// Decodes without tracking the path (tracking made the whole slack-threshold
/// call 6% slower); only a failure decodes again, to name the field.
fn decode_json<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Error> {
    serde_json::from_slice(bytes).or_else(|_| decode_json_tracking_path(bytes, what))
}

fn decode_json_tracking_path<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            Error::msg(format!("invalid {what}: {inner}"))
        } else {
            Error::msg(format!("invalid {what} at `{path}`: {inner}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    fn event(content_type: &str, payload: &str) -> Event {
        Event {
            id: "evt_1".into(),
            tenant: "acme".into(),
            event_type: "project.published".into(),
            timestamp: "2025-01-01T00:00:00.000Z".into(),
            content_type: content_type.into(),
            payload: payload.as_bytes().to_vec(),
        }
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Threshold {
        pointer: String,
        threshold: f64,
    }

    #[test]
    fn json_content_types_are_recognised() {
        assert!(event("application/json", "{}").is_json());
        assert!(event("Application/JSON; charset=utf-8", "{}").is_json());
        assert!(event("application/cloudevents+json", "{}").is_json());
        assert!(!event("application/xml", "<a/>").is_json());
        assert!(!event("application/jsonl", "{}").is_json());
    }

    #[test]
    fn payloads_decode_as_json_or_text() {
        let e = event("application/json", r#"{"rows":[1,2]}"#);
        assert_eq!(e.json_value().unwrap()["rows"][1], 2);
        assert_eq!(e.text().unwrap(), r#"{"rows":[1,2]}"#);
        let mut bad = event("text/plain", "");
        bad.payload = vec![0xff, 0xfe];
        assert!(bad.text().unwrap_err().message().contains("not UTF-8"));
    }

    #[test]
    fn payload_values_are_json_or_the_document_as_a_string() {
        let e = event("application/json", r#"{"rows":[1,2]}"#);
        assert_eq!(e.payload_value().unwrap(), json!({"rows": [1, 2]}));
        // A JSON string stays a string; a document that looks like JSON stays text.
        let quoted = event("application/cloudevents+json", r#""x""#);
        assert_eq!(quoted.payload_value().unwrap(), json!("x"));
        let csv = event("text/csv; charset=utf-8", "[1,2]\n");
        assert_eq!(csv.payload_value().unwrap(), json!("[1,2]\n"));
        assert_eq!(event("text/plain", "").payload_value().unwrap(), json!(""));
    }

    #[test]
    fn payload_values_that_do_not_match_the_content_type_are_errors() {
        let not_json = event("application/json", "<a/>")
            .payload_value()
            .unwrap_err();
        assert!(
            not_json
                .message()
                .contains("expected value at line 1 column 1"),
            "{not_json}"
        );
        let mut binary = event("application/octet-stream", "");
        binary.payload = vec![0x50, 0x4b, 0x03, 0xff];
        assert_eq!(
            binary.payload_value().unwrap_err().message(),
            "the event payload is not UTF-8 text: invalid utf-8 sequence of 1 bytes from index 3"
        );
    }

    #[test]
    fn payload_values_give_back_the_ingested_payload() {
        for ingest_body in [
            json!({"type": "t", "payload": {"a": [1, null, "x"]}}),
            json!({"type": "t", "payload": [1, 2]}),
            json!({"type": "t", "content_type": "application/problem+json", "payload": "s"}),
            json!({"type": "t", "content_type": "application/xml", "payload": "<a>&amp;</a>"}),
        ] {
            let event = crate::testing::sample_event(&ingest_body.to_string());
            assert_eq!(event.payload_value().unwrap(), ingest_body["payload"]);
        }
    }

    #[test]
    fn config_errors_name_the_bad_field() {
        let sub = |config: &str| Subscription {
            id: "sub_1".into(),
            url: "https://example.com/hook".into(),
            config: config.into(),
        };
        let ok: Threshold = sub(r#"{"pointer":"/a","threshold":3}"#).config().unwrap();
        assert_eq!(ok.threshold, 3.0);

        let wrong_type = sub(r#"{"pointer":"/a","threshold":"x"}"#)
            .config::<Threshold>()
            .unwrap_err();
        assert!(
            wrong_type
                .message()
                .starts_with("invalid plugin config at `threshold`: invalid type: string"),
            "{wrong_type}"
        );

        let missing = sub(r#"{"pointer":"/a"}"#)
            .config::<Threshold>()
            .unwrap_err();
        assert!(
            missing.message().contains("missing field `threshold`"),
            "{missing}"
        );
    }

    #[test]
    fn requests_build_with_headers() {
        let r = Request::json(&serde_json::json!({"a": 1}))
            .unwrap()
            .header("x-team", "data");
        assert_eq!(r.body, br#"{"a":1}"#);
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        assert_eq!(r.headers, vec![("x-team".to_owned(), "data".to_owned())]);
        assert_eq!(
            Outcome::from(Request::new("<a/>", "application/xml")),
            Outcome::Deliver(Request {
                body: b"<a/>".to_vec(),
                content_type: Some("application/xml".into()),
                headers: vec![],
            })
        );
        assert_eq!(Outcome::skip("quiet"), Outcome::Skip("quiet".into()));
    }
}
