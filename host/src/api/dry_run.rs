//! `POST /v1/tenants/{tenant}/subscriptions/{id}/dry-run`: what the
//! subscription would send for a stored or a pasted event, with nothing sent
//! or stored; and the shapes it takes in and gives back.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiState;
use super::error::ApiError;
use super::events::EventIn;
use super::extract::{ApiJson, Id, TenantAdmin};
use crate::app::{App, DryRunEvent};
use crate::delivery::render::{NotSent, Rendered};
use crate::headers;
use crate::ids::{EventId, SubscriptionId};
use crate::model::LogLine;

/// The event to try: `event_id` (a stored event of the tenant) or `event`
/// (an event as a source would post it), exactly one of them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DryRunIn {
    /// A stored event of the tenant (`evt_...`).
    #[serde(default)]
    pub event_id: Option<EventId>,
    /// An event as `POST .../events` takes it.
    #[serde(default)]
    pub event: Option<EventIn>,
}

impl TryFrom<DryRunIn> for DryRunEvent {
    type Error = ApiError;

    fn try_from(input: DryRunIn) -> Result<Self, ApiError> {
        match (input.event_id, input.event) {
            (Some(id), None) => Ok(DryRunEvent::Stored(id)),
            (None, Some(event)) => Ok(DryRunEvent::Posted(event.into())),
            _ => Err(ApiError::invalid_request(
                "give exactly one of `event_id` (a stored event) and `event` (an event as posted)",
            )),
        }
    }
}

/// What the plugin decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DryRunOutcome {
    /// The request in `request` would be sent.
    Deliver,
    /// The plugin chose not to send; `reason` says why.
    Skip,
    /// The plugin failed or asked for a request hookshape will not send;
    /// `reason` says what went wrong. A delivery would be retried.
    Error,
}

/// The request a delivery would send.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunRequestOut {
    /// Header names to values, signature headers included; credentials
    /// replaced with `[redacted]` as on stored attempts.
    pub headers: BTreeMap<String, String>,
    /// The body, as text.
    pub body: String,
    /// The `content-type` header sent.
    pub content_type: String,
}

/// The answer to a dry run.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunOut {
    pub outcome: DryRunOutcome,
    /// On `deliver`, the request; null otherwise.
    pub request: Option<DryRunRequestOut>,
    /// On `skip` and `error`, why; null on `deliver`.
    pub reason: Option<String>,
    /// What the plugin logged, in order.
    pub plugin_logs: Vec<LogLine>,
    /// How long the plugin ran, in microseconds; 0 without a plugin.
    pub duration_us: u64,
}

impl From<Rendered> for DryRunOut {
    fn from(rendered: Rendered) -> Self {
        let (outcome, request, reason) = match rendered.result {
            Ok(req) => {
                let content_type = req
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default();
                let headers = req
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), headers::stored_value(k.as_str(), v)))
                    .collect();
                let body = String::from_utf8_lossy(&req.body).into_owned();
                let request = DryRunRequestOut {
                    headers,
                    body,
                    content_type,
                };
                (DryRunOutcome::Deliver, Some(request), None)
            }
            Err(NotSent::Skipped(reason)) => (DryRunOutcome::Skip, None, Some(reason)),
            Err(NotSent::TransformFailed(why) | NotSent::Invalid(why)) => {
                (DryRunOutcome::Error, None, Some(why))
            }
        };
        DryRunOut {
            outcome,
            request,
            reason,
            plugin_logs: rendered.logs,
            duration_us: rendered
                .transform_time
                .map_or(0, |t| u64::try_from(t.as_micros()).unwrap_or(u64::MAX)),
        }
    }
}

/// 200 with what the subscription would send; 404 for an unknown
/// subscription or event.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/subscriptions/{id}/dry-run",
    tag = "subscriptions",
    params(super::openapi::SubscriptionPath),
    request_body = DryRunIn,
    responses(
        (status = 200, body = DryRunOut),
        (status = 404, description = "No such subscription or event in the tenant.", body = super::openapi::ErrorBody),
    ),
)]
async fn dry_run(
    State(app): State<App>,
    TenantAdmin(tenant): TenantAdmin,
    Id(id): Id<SubscriptionId>,
    ApiJson(input): ApiJson<DryRunIn>,
) -> Result<Json<DryRunOut>, ApiError> {
    let rendered = app.dry_run(&tenant, &id, input.try_into()?).await?;
    Ok(Json(rendered.into()))
}

pub(super) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(dry_run))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use serde_json::json;

    #[test]
    fn exactly_one_event_is_taken() {
        let parse = |v| DryRunEvent::try_from(serde_json::from_value::<DryRunIn>(v).unwrap());
        let id = EventId::generate();
        assert!(
            matches!(parse(json!({"event_id": id})), Ok(DryRunEvent::Stored(got)) if got == id)
        );
        let posted = parse(json!({"event": {"type": "a.b", "payload": {"n": 1}}}));
        assert!(matches!(posted, Ok(DryRunEvent::Posted(e)) if e.event_type == "a.b"));
        for both_or_none in [
            json!({}),
            json!({"event_id": id, "event": {"type": "a", "payload": 1}}),
        ] {
            let err = parse(both_or_none).unwrap_err();
            assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(err.code(), "invalid_request");
        }
    }

    #[test]
    fn skips_and_errors_carry_a_reason_and_no_request() {
        let rendered = |result| Rendered {
            result,
            logs: vec![],
            plugin_sha256: None,
            transform_time: Some(std::time::Duration::from_micros(1500)),
        };
        let out = DryRunOut::from(rendered(Err(NotSent::Skipped("below".into()))));
        assert_eq!(
            serde_json::to_value(out).unwrap(),
            json!({"outcome": "skip", "request": null, "reason": "below", "plugin_logs": [], "duration_us": 1500})
        );
        let out = DryRunOut::from(rendered(Err(NotSent::Invalid("bad url".into()))));
        assert_eq!(out.outcome, DryRunOutcome::Error);
    }
}
