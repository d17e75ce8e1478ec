//! A stand-in for a Slack incoming webhook (`POST /services/T…/B…/token`) that accepts and
//! rejects messages the way Slack does, so the demo and the tests see real-looking answers.
//!
//! Slack answers in `text/plain`: `200 ok` when the message posts, else a status and a short
//! code (Slack's changelog of 2016-05-17 lists the codes and statuses):
//!
//! | case | answer |
//! | --- | --- |
//! | body is not JSON, or not an object (a form body's `payload` field is read as the JSON) | 400 `invalid_payload` |
//! | `text` is present but not a string | 400 `invalid_payload` |
//! | `blocks` is not an array of at most 50 objects that each carry a string `type` | 400 `invalid_blocks` |
//! | no non-blank `text`, no block and no attachment | 400 `no_text` |
//! | any path but `/services/{a}/{b}/{c}` | 404 `no_service` |
//! | body over 1 MiB | 413 `request_too_large` |
//!
//! Slack documents no byte limit for incoming webhooks (it truncates `text` past 40,000
//! characters and posts anyway); the 1 MiB cap is this receiver's, matching hookshape's default
//! event limit. The extras are this receiver's own: with `--secret`, an unsigned or badly signed
//! request gets 401 `invalid_signature`, and `--fail-first N` answers 503 `service_unavailable`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::gate::{Gate, GateConfig, Refusal};
use crate::record::{Envelope, Received, Recorder};

/// Largest accepted body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Slack's limit on blocks in one message.
pub const MAX_BLOCKS: usize = 50;

/// Why Slack refused a message; the `Display` form is the body Slack sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlackError {
    /// The body (or its `payload` form field) is not a JSON object with valid fields.
    InvalidPayload,
    /// `blocks` is not a list of block objects, or has too many.
    InvalidBlocks,
    /// Neither `text` nor `blocks` says anything.
    NoText,
    /// No hook at this path.
    NoService,
    /// The body is over [`MAX_BODY_BYTES`].
    RequestTooLarge,
    /// The Standard Webhooks signature did not verify.
    InvalidSignature,
    /// One of the first `--fail-first` requests.
    ServiceUnavailable,
}

impl SlackError {
    /// The error code Slack puts in the body.
    pub fn code(self) -> &'static str {
        match self {
            SlackError::InvalidPayload => "invalid_payload",
            SlackError::InvalidBlocks => "invalid_blocks",
            SlackError::NoText => "no_text",
            SlackError::NoService => "no_service",
            SlackError::RequestTooLarge => "request_too_large",
            SlackError::InvalidSignature => "invalid_signature",
            SlackError::ServiceUnavailable => "service_unavailable",
        }
    }

    /// The HTTP status Slack answers with.
    pub fn status(self) -> StatusCode {
        match self {
            SlackError::InvalidPayload | SlackError::InvalidBlocks | SlackError::NoText => {
                StatusCode::BAD_REQUEST
            }
            SlackError::NoService => StatusCode::NOT_FOUND,
            SlackError::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            SlackError::InvalidSignature => StatusCode::UNAUTHORIZED,
            SlackError::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for SlackError {
    fn into_response(self) -> Response {
        plain(self.status(), self.code())
    }
}

/// What Slack would post: the message object as received.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlackMessage {
    /// The message object.
    pub message: Map<String, Value>,
}

/// The Slack stand-in's state.
#[derive(Debug)]
pub struct SlackReceiver {
    gate: Gate,
    recorder: Recorder<SlackMessage>,
}

impl SlackReceiver {
    /// A receiver that checks requests at the gate configured so.
    pub fn new(config: GateConfig) -> Arc<SlackReceiver> {
        Arc::new(SlackReceiver {
            gate: Gate::new(config),
            recorder: Recorder::default(),
        })
    }

    /// Messages accepted so far, oldest first.
    pub fn received(&self) -> Vec<Received<SlackMessage>> {
        self.recorder.entries()
    }

    /// `POST /services/{a}/{b}/{c}`, `GET` and `DELETE /received`; 404 `no_service` elsewhere.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/services/{team}/{hook}/{token}", post(post_message))
            .route(
                "/received",
                get(|State(receiver): State<Arc<SlackReceiver>>| async move {
                    Json(receiver.received())
                })
                .delete(|State(receiver): State<Arc<SlackReceiver>>| async move {
                    receiver.recorder.clear();
                    StatusCode::NO_CONTENT
                }),
            )
            .fallback(|| async { SlackError::NoService })
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self)
    }
}

async fn post_message(
    State(receiver): State<Arc<SlackReceiver>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, SlackError> {
    receiver.gate.take_failure().map_err(|refusal| {
        tracing::info!(%refusal, "answering 503");
        SlackError::ServiceUnavailable
    })?;
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => SlackError::RequestTooLarge,
        _ => SlackError::InvalidPayload,
    })?;
    let signature =
        receiver
            .gate
            .check_signature(&headers, &body)
            .map_err(|refusal: Refusal| {
                tracing::warn!(%refusal, "refusing an unsigned or badly signed message");
                SlackError::InvalidSignature
            })?;
    let message = parse_message(&headers, &body).inspect_err(|error| {
        tracing::warn!(code = error.code(), "refusing a message");
    })?;
    let text = message.get("text").and_then(Value::as_str);
    let blocks = message
        .get("blocks")
        .and_then(Value::as_array)
        .map(Vec::len);
    tracing::info!(text, blocks, "message posted");
    let envelope = Envelope::new(&method, &uri, &headers, signature);
    receiver
        .recorder
        .record(&envelope, [SlackMessage { message }]);
    Ok(plain(StatusCode::OK, "ok"))
}

/// Reads and checks a message the way Slack does.
pub fn parse_message(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, SlackError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let value: Value = if is_form {
        let payload = url::form_urlencoded::parse(body)
            .find(|(key, _)| key == "payload")
            .ok_or(SlackError::InvalidPayload)?
            .1;
        serde_json::from_str(&payload)
    } else {
        serde_json::from_slice(body)
    }
    .map_err(|_| SlackError::InvalidPayload)?;
    let Value::Object(message) = value else {
        return Err(SlackError::InvalidPayload);
    };

    let has_text = match message.get("text") {
        None | Some(Value::Null) => false,
        Some(Value::String(text)) => !text.trim().is_empty(),
        Some(_) => return Err(SlackError::InvalidPayload),
    };
    let block_count = match message.get("blocks") {
        None | Some(Value::Null) => 0,
        Some(Value::Array(blocks)) if blocks.len() <= MAX_BLOCKS && blocks.iter().all(is_block) => {
            blocks.len()
        }
        Some(_) => return Err(SlackError::InvalidBlocks),
    };
    let has_attachments = message
        .get("attachments")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if !has_text && block_count == 0 && !has_attachments {
        return Err(SlackError::NoText);
    }
    Ok(message)
}

fn is_block(block: &Value) -> bool {
    block
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty())
}

fn plain(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    fn parse(body: &str) -> Result<Map<String, Value>, SlackError> {
        parse_message(&HeaderMap::new(), body.as_bytes())
    }

    #[test]
    fn accepts_text_blocks_or_attachments() {
        assert_eq!(parse(r#"{"text":"hi"}"#).unwrap()["text"], "hi");
        assert!(
            parse(r#"{"blocks":[{"type":"section","text":{"type":"mrkdwn","text":"x"}}]}"#).is_ok()
        );
        assert!(parse(r#"{"attachments":[{"fallback":"x"}]}"#).is_ok());
        assert!(parse(r#"{"text":"hi","blocks":null}"#).is_ok());
    }

    #[test]
    fn refuses_what_slack_refuses() {
        assert_eq!(parse("not json"), Err(SlackError::InvalidPayload));
        assert_eq!(parse(r#"["text"]"#), Err(SlackError::InvalidPayload));
        assert_eq!(parse(r#""hi""#), Err(SlackError::InvalidPayload));
        assert_eq!(parse(r#"{"text":5}"#), Err(SlackError::InvalidPayload));
        assert_eq!(parse("{}"), Err(SlackError::NoText));
        assert_eq!(parse(r#"{"text":"  "}"#), Err(SlackError::NoText));
        assert_eq!(parse(r#"{"blocks":[]}"#), Err(SlackError::NoText));
        assert_eq!(parse(r#"{"username":"bot"}"#), Err(SlackError::NoText));
        assert_eq!(parse(r#"{"blocks":"x"}"#), Err(SlackError::InvalidBlocks));
        assert_eq!(parse(r#"{"blocks":[{}]}"#), Err(SlackError::InvalidBlocks));
        assert_eq!(parse(r#"{"blocks":[1]}"#), Err(SlackError::InvalidBlocks));
        assert_eq!(
            parse(r#"{"text":"x","blocks":[{"type":5}]}"#),
            Err(SlackError::InvalidBlocks)
        );
        let too_many = json!({"blocks": vec![json!({"type": "divider"}); MAX_BLOCKS + 1]});
        assert_eq!(parse(&too_many.to_string()), Err(SlackError::InvalidBlocks));
        let enough = json!({"blocks": vec![json!({"type": "divider"}); MAX_BLOCKS]});
        assert!(parse(&enough.to_string()).is_ok());
    }

    #[test]
    fn reads_the_payload_field_of_a_form() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let body = b"payload=%7B%22text%22%3A%22hi%22%7D";
        assert_eq!(parse_message(&headers, body).unwrap()["text"], "hi");
        assert_eq!(
            parse_message(&headers, b"text=hi"),
            Err(SlackError::InvalidPayload)
        );
    }

    #[test]
    fn codes_and_statuses_match_slack() {
        assert_eq!(SlackError::NoService.status(), StatusCode::NOT_FOUND);
        assert_eq!(SlackError::NoText.code(), "no_text");
        assert_eq!(SlackError::InvalidBlocks.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            SlackError::RequestTooLarge.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }
}
