//! A stand-in for a Zapier "Catch Hook" (`/hooks/catch/{account}/{hook}/`), lenient the way
//! Zapier is: Zapier's help says a catch hook always answers with a success message, whatever
//! it was sent, so this one does too, with Zapier's body
//! `{"id", "request_id", "attempt", "status": "success"}` (`attempt` equals `request_id`, as in
//! Zapier's real answers).
//!
//! What it stores, per entry, is the parsed `body` and its flat `fields`, the way a Zap's next
//! steps see them: nested objects flattened with `__` between keys (`user__name`), arrays kept
//! whole, and query-string parameters added (the body wins on a clash). A JSON object is one
//! entry; a top-level JSON array is one entry per element (a Zap runs once per item; an element
//! that is not an object is stored as the field `value`), so an empty array stores nothing; a
//! JSON scalar is the field `value`; a form body gives its fields; anything unparseable is
//! stored as the string `body` with the query fields only. These choices for non-object bodies
//! are this receiver's: Zapier documents only that it accepts them.
//!
//! Catch hooks take `POST`, `PUT` and `GET`. Other paths answer 404. Bodies over Zapier's
//! documented 10 MB webhook payload limit answer 413. With `--secret`, an unsigned or badly
//! signed request gets 401; `--fail-first N` answers 503 to the first N requests. Errors are
//! `{"status": "error", "message": "..."}`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, get, on};
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::gate::{Gate, GateConfig};
use crate::record::{Envelope, Received, Recorder};

/// Zapier's webhook payload limit.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Separator Zapier puts between the keys of a flattened nested object.
pub const FIELD_SEPARATOR: &str = "__";

/// One caught item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Catch {
    /// The id this item was answered with.
    pub id: String,
    /// The HTTP request it came in; shared by the items of one array.
    pub request_id: String,
    /// The item as parsed: an object, another JSON value, or the raw text.
    pub body: Value,
    /// The item's flat fields.
    pub fields: Map<String, Value>,
}

/// Zapier's answer to a caught hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatchAnswer {
    /// The first caught item's id.
    pub id: String,
    /// This request's id.
    pub request_id: String,
    /// The attempt id, which is the request id.
    pub attempt: String,
    /// Always `success`.
    pub status: &'static str,
}

/// The Zapier stand-in's state.
#[derive(Debug)]
pub struct ZapierReceiver {
    gate: Gate,
    recorder: Recorder<Catch>,
}

impl ZapierReceiver {
    /// A receiver that checks requests at the gate configured so.
    pub fn new(config: GateConfig) -> Arc<ZapierReceiver> {
        Arc::new(ZapierReceiver {
            gate: Gate::new(config),
            recorder: Recorder::default(),
        })
    }

    /// Items caught so far, oldest first.
    pub fn received(&self) -> Vec<Received<Catch>> {
        self.recorder.entries()
    }

    /// Catch hooks at `/hooks/catch/{account}/{hook}` (with or without the trailing slash),
    /// `GET` and `DELETE /received`; 404 elsewhere.
    pub fn router(self: Arc<Self>) -> Router {
        let methods = MethodFilter::POST
            .or(MethodFilter::PUT)
            .or(MethodFilter::GET);
        Router::new()
            .route("/hooks/catch/{account}/{hook}", on(methods, catch))
            .route("/hooks/catch/{account}/{hook}/", on(methods, catch))
            .route(
                "/received",
                get(|State(receiver): State<Arc<ZapierReceiver>>| async move {
                    Json(receiver.received())
                })
                .delete(
                    |State(receiver): State<Arc<ZapierReceiver>>| async move {
                        receiver.recorder.clear();
                        StatusCode::NO_CONTENT
                    },
                ),
            )
            .fallback(|| async { error(StatusCode::NOT_FOUND, "no such hook") })
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self)
    }
}

async fn catch(
    State(receiver): State<Arc<ZapierReceiver>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(refusal) = receiver.gate.take_failure() {
        tracing::info!(%refusal, "answering 503");
        return error(StatusCode::SERVICE_UNAVAILABLE, "service unavailable");
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return error(rejection.status(), &rejection.body_text()),
    };
    let signature = match receiver.gate.check_signature(&headers, &body) {
        Ok(signature) => signature,
        Err(refusal) => {
            tracing::warn!(%refusal, "refusing an unsigned or badly signed hook");
            return error(StatusCode::UNAUTHORIZED, &refusal.to_string());
        }
    };

    let request_id = uuid_like();
    let query = query_fields(uri.query());
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let catches: Vec<Catch> = parse_items(content_type, &body)
        .into_iter()
        .map(|(body, fields)| {
            let mut merged = query.clone();
            merged.extend(fields);
            Catch {
                id: uuid_like(),
                request_id: request_id.clone(),
                body,
                fields: merged,
            }
        })
        .collect();
    let answer = CatchAnswer {
        id: catches.first().map_or_else(uuid_like, |c| c.id.clone()),
        attempt: request_id.clone(),
        request_id,
        status: "success",
    };
    tracing::info!(
        request_id = %answer.request_id,
        items = catches.len(),
        "hook caught"
    );
    let envelope = Envelope::new(&method, &uri, &headers, signature);
    receiver.recorder.record(&envelope, catches);
    Json(answer).into_response()
}

/// Splits a body into items, each as `(body, flat fields)`.
pub fn parse_items(content_type: &str, body: &[u8]) -> Vec<(Value, Map<String, Value>)> {
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let fields: Map<String, Value> = url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        return vec![(Value::Object(fields.clone()), fields)];
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items.into_iter().map(item).collect(),
        Ok(value) => vec![item(value)],
        Err(_) if body.is_empty() => vec![(Value::Object(Map::new()), Map::new())],
        Err(_) => vec![(
            Value::String(String::from_utf8_lossy(body).into_owned()),
            Map::new(),
        )],
    }
}

fn item(value: Value) -> (Value, Map<String, Value>) {
    let mut fields = Map::new();
    match &value {
        Value::Object(object) => flatten("", object, &mut fields),
        other => {
            fields.insert("value".to_owned(), other.clone());
        }
    }
    (value, fields)
}

/// Nested objects become `outer__inner` keys; everything else is kept as is.
pub fn flatten(prefix: &str, object: &Map<String, Value>, into: &mut Map<String, Value>) {
    for (key, value) in object {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}{FIELD_SEPARATOR}{key}")
        };
        match value {
            Value::Object(inner) if !inner.is_empty() => flatten(&name, inner, into),
            other => {
                into.insert(name, other.clone());
            }
        }
    }
}

fn query_fields(query: Option<&str>) -> Map<String, Value> {
    query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// A random id in the 8-4-4-4-12 hex shape of Zapier's ids.
fn uuid_like() -> String {
    let hex = format!("{:032x}", rand::random::<u128>());
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"status": "error", "message": message}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn flattens_nested_objects_with_double_underscores() {
        let (body, flat) = item(json!({
            "event": "report_run_completed",
            "report": {"name": "Revenue", "owner": {"email": "a@b.c"}},
            "rows": [{"revenue": 1}],
            "empty": {},
        }));
        assert_eq!(body["report"]["name"], "Revenue");
        assert_eq!(
            flat,
            fields(json!({
                "event": "report_run_completed",
                "report__name": "Revenue",
                "report__owner__email": "a@b.c",
                "rows": [{"revenue": 1}],
                "empty": {},
            }))
        );
    }

    #[test]
    fn splits_arrays_and_keeps_scalars_and_junk() {
        let items = parse_items("application/json", br#"[{"a":1},{"b":{"c":2}},3]"#);
        let flats: Vec<_> = items.iter().map(|(_, f)| f.clone()).collect();
        assert_eq!(
            flats,
            [
                fields(json!({"a": 1})),
                fields(json!({"b__c": 2})),
                fields(json!({"value": 3}))
            ]
        );
        assert!(parse_items("application/json", b"[]").is_empty());
        assert_eq!(
            parse_items("application/json", b"true"),
            [(json!(true), fields(json!({"value": true})))]
        );
        assert_eq!(
            parse_items("text/plain", b"{not json"),
            [(json!("{not json"), Map::new())]
        );
        assert_eq!(parse_items("", b""), [(json!({}), Map::new())]);
    }

    #[test]
    fn reads_forms_and_query_strings() {
        let items = parse_items(
            "application/x-www-form-urlencoded; charset=utf-8",
            b"first_name=Bryan&age=27&note=a+b%21",
        );
        let expected = fields(json!({"first_name": "Bryan", "age": "27", "note": "a b!"}));
        assert_eq!(items, [(Value::Object(expected.clone()), expected)]);
        assert_eq!(
            query_fields(Some("source=hookshape&x=%2F")),
            fields(json!({"source": "hookshape", "x": "/"}))
        );
        assert!(query_fields(None).is_empty());
    }

    #[test]
    fn ids_look_like_uuids() {
        let id = uuid_like();
        let parts: Vec<_> = id.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
        assert_ne!(uuid_like(), id);
    }
}
