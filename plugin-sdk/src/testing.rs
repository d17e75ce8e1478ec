//! Helpers for unit-testing a [`Transform`] natively with `cargo test`.
//!
//! They build the [`Event`] and [`Subscription`] hookshape would hand over
//! (from scratch or from an ingest body such as `{"type", "content_type",
//! "payload"}`), run the transform, and take its [`Outcome`] apart. The
//! `delivered*`, `skipped` and `failed` helpers panic with the actual outcome
//! when it is not the expected kind, and [`json_body`] when a body is not
//! JSON, so a test reads as a list of assertions. Fixed ids and times
//! ([`EVENT_ID`], [`TENANT`], ...) keep expected bodies literal.
//!
//! The module is always compiled rather than behind a cargo feature: it is a
//! few functions over types the crate already has, needs no extra dependency,
//! and a cdylib exports none of it, so nothing reaches the `.wasm`; plugins
//! use it without any `[dev-dependencies]` wiring.

use serde_json::Value;

use crate::types::is_json_media_type;
use crate::{Error, Event, Outcome, Request, Subscription, Transform};

/// The id of events built here.
pub const EVENT_ID: &str = "evt_01JD8Z";
/// The tenant of events built here.
pub const TENANT: &str = "acme";
/// The ingest time of events built here.
pub const TIMESTAMP: &str = "2026-11-21T09:14:05Z";
/// The id of subscriptions built here.
pub const SUBSCRIPTION_ID: &str = "sub_1";
/// The URL of subscriptions built here.
pub const SUBSCRIPTION_URL: &str = "https://receiver.example.com/hook";

/// An event of this type and payload, with [`EVENT_ID`], [`TENANT`] and
/// [`TIMESTAMP`]; change a field with `Event { tenant: ..., ..event(...) }`.
pub fn event(event_type: &str, content_type: &str, payload: impl Into<Vec<u8>>) -> Event {
    Event {
        id: EVENT_ID.to_owned(),
        tenant: TENANT.to_owned(),
        event_type: event_type.to_owned(),
        timestamp: TIMESTAMP.to_owned(),
        content_type: content_type.to_owned(),
        payload: payload.into(),
    }
}

/// The event hookshape stores for an ingest body `{"type", "content_type"?,
/// "payload"}` (see `POST /v1/tenants/{tenant}/events`): the payload as JSON
/// text, or, for a non-JSON `content_type`, the document held in the
/// `payload` string. The body's own `id` is the source's and is not kept.
///
/// # Panics
///
/// When `ingest_body` is not such a body.
#[track_caller]
pub fn sample_event(ingest_body: &str) -> Event {
    let body: Value = serde_json::from_str(ingest_body)
        .unwrap_or_else(|e| panic!("the ingest body is not JSON: {e}"));
    let Some(event_type) = body["type"].as_str() else {
        panic!("the ingest body has no string `type`: {body}");
    };
    let content_type = match &body["content_type"] {
        Value::Null => "application/json",
        Value::String(content_type) => content_type,
        other => panic!("the ingest body's `content_type` is not a string: {other}"),
    };
    let payload = match &body["payload"] {
        payload if is_json_media_type(content_type) => {
            serde_json::to_vec(payload).expect("a JSON value serializes")
        }
        Value::String(document) => document.clone().into_bytes(),
        _ => panic!("a {content_type} payload must be a string holding the document"),
    };
    event(event_type, content_type, payload)
}

/// A subscription ([`SUBSCRIPTION_ID`], [`SUBSCRIPTION_URL`]) whose plugin
/// config is `config`.
pub fn subscription(config: Value) -> Subscription {
    Subscription {
        id: SUBSCRIPTION_ID.to_owned(),
        url: SUBSCRIPTION_URL.to_owned(),
        config: config.to_string(),
    }
}

/// Runs `T` on `event` for a [`subscription`] with this plugin config.
pub fn run<T: Transform>(event: Event, config: Value) -> Result<Outcome, Error> {
    T::transform(event, subscription(config))
}

/// The request a transform delivered.
///
/// # Panics
///
/// When it skipped or failed instead.
#[track_caller]
pub fn delivered(result: Result<Outcome, Error>) -> Request {
    match result {
        Ok(Outcome::Deliver(request)) => request,
        other => panic!("expected a delivery, got {other:?}"),
    }
}

/// The JSON body of the request a transform delivered; see [`json_body`].
///
/// # Panics
///
/// When it skipped or failed instead, or as [`json_body`] does.
#[track_caller]
pub fn delivered_json(result: Result<Outcome, Error>) -> Value {
    json_body(&delivered(result))
}

/// The body of `request`, which must be sent as JSON: with no content type
/// (hookshape then sends `application/json`) or a JSON one.
///
/// # Panics
///
/// When the content type is not JSON or the body does not parse.
#[track_caller]
pub fn json_body(request: &Request) -> Value {
    let content_type = request
        .content_type
        .as_deref()
        .unwrap_or("application/json");
    assert!(
        is_json_media_type(content_type),
        "expected a JSON request, got content type {content_type}"
    );
    serde_json::from_slice(&request.body)
        .unwrap_or_else(|e| panic!("the delivered body is not JSON ({e}): {request:?}"))
}

/// Why a transform skipped.
///
/// # Panics
///
/// When it delivered or failed instead.
#[track_caller]
pub fn skipped(result: Result<Outcome, Error>) -> String {
    match result {
        Ok(Outcome::Skip(reason)) => reason,
        other => panic!("expected a skip, got {other:?}"),
    }
}

/// The message a transform failed with.
///
/// # Panics
///
/// When it delivered or skipped instead.
#[track_caller]
pub fn failed(result: Result<Outcome, Error>) -> String {
    match result {
        Err(error) => error.into_message(),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Answers by the event type, echoing what it was given.
    struct ByType;

    impl Transform for ByType {
        fn transform(event: Event, subscription: Subscription) -> Result<Outcome, Error> {
            match event.event_type.as_str() {
                "deliver" => Ok(Request::json(&json!({
                    "tenant": event.tenant,
                    "subscription": subscription.id,
                    "config": subscription.config::<Value>()?,
                }))?
                .into()),
                "text" => Ok(Request::new("hi", "text/plain").into()),
                "skip" => Ok(Outcome::skip("asked to skip")),
                _ => Err(Error::msg("unknown type")),
            }
        }
    }

    #[test]
    fn sample_events_keep_json_payloads_as_json_and_documents_as_is() {
        let json = sample_event(r#"{"type": "a.b", "id": "src-1", "payload": {"n": [1, 2]}}"#);
        assert_eq!(json, event("a.b", "application/json", r#"{"n":[1,2]}"#));

        let xml = sample_event(
            r#"{"type": "p", "content_type": "application/xml", "payload": "<p a=\"1\"/>"}"#,
        );
        assert_eq!(xml.content_type, "application/xml");
        assert_eq!(xml.payload, br#"<p a="1"/>"#);

        let json_string = sample_event(
            r#"{"type": "p", "content_type": "application/cloudevents+json", "payload": "x"}"#,
        );
        assert_eq!(json_string.payload, br#""x""#);
    }

    #[test]
    #[should_panic(expected = "must be a string holding the document")]
    fn non_json_samples_need_a_string_payload() {
        sample_event(r#"{"type": "p", "content_type": "text/csv", "payload": {"a": 1}}"#);
    }

    #[test]
    fn outcomes_are_taken_apart_by_kind() {
        let body = delivered_json(run::<ByType>(
            event("deliver", "application/json", "{}"),
            json!({"k": 1}),
        ));
        assert_eq!(
            body,
            json!({"tenant": TENANT, "subscription": SUBSCRIPTION_ID, "config": {"k": 1}})
        );
        let unlabelled = Request {
            body: b"[1]".to_vec(),
            content_type: None,
            headers: Vec::new(),
        };
        assert_eq!(json_body(&unlabelled), json!([1]));
        let text = delivered(run::<ByType>(event("text", "text/plain", ""), json!({})));
        assert_eq!(text.body, b"hi");
        assert_eq!(
            skipped(run::<ByType>(event("skip", "text/plain", ""), json!({}))),
            "asked to skip"
        );
        assert_eq!(
            failed(run::<ByType>(event("other", "text/plain", ""), json!({}))),
            "unknown type"
        );
    }

    #[test]
    #[should_panic(expected = "expected a JSON request, got content type text/plain")]
    fn delivered_json_refuses_other_content_types() {
        delivered_json(run::<ByType>(event("text", "text/plain", ""), json!({})));
    }
}
