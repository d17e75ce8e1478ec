//! `/v1/tenants/{tenant}/events`: ingest (publisher) and read back (admin),
//! and the shapes they take in and give back.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiState;
use super::error::ApiError;
use super::extract::{ApiJson, Id, TenantAdmin, TenantPublisher};
use crate::app::{App, EventDetails, IngestReceipt, NewEvent};
use crate::clock::Timestamp;
use crate::ids::{DeliveryId, EventId, SubscriptionId, Tenant};
use crate::model::{Delivery, DeliveryState, Payload};

/// An event as a source posts it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    /// The event type subscriptions match on, e.g. `project.published`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The source's own id: a repeated one is not ingested twice.
    #[serde(default)]
    pub id: Option<String>,
    /// The payload's media type; defaults to `application/json`.
    #[serde(default)]
    pub content_type: Option<String>,
    /// Any JSON; a string holding the document when `content_type` is not JSON.
    pub payload: Payload,
}

impl From<EventIn> for NewEvent {
    fn from(e: EventIn) -> Self {
        NewEvent {
            event_type: e.event_type,
            source_id: e.id,
            content_type: e.content_type,
            payload: e.payload,
        }
    }
}

/// The answer to an ingest.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestOut {
    /// hookshape's id of the event (`evt_...`).
    pub id: EventId,
    /// How many subscriptions it goes to.
    pub deliveries: usize,
    /// Present, and true, when the source id was seen before.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

impl From<IngestReceipt> for IngestOut {
    fn from(r: IngestReceipt) -> Self {
        IngestOut {
            id: r.id,
            deliveries: r.deliveries,
            duplicate: r.duplicate,
        }
    }
}

/// A delivery as shown on its event.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    pub id: DeliveryId,
    pub subscription_id: SubscriptionId,
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due; null once the state is final.
    pub next_attempt_at: Option<Timestamp>,
}

impl From<Delivery> for DeliveryOut {
    fn from(d: Delivery) -> Self {
        DeliveryOut {
            id: d.id,
            subscription_id: d.subscription_id,
            state: d.state,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
        }
    }
}

/// An event with its deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    pub id: EventId,
    /// The source's own id, when it gave one.
    pub source_id: Option<String>,
    #[serde(rename = "type")]
    pub event_type: String,
    pub tenant: Tenant,
    /// When it was ingested.
    pub timestamp: Timestamp,
    pub content_type: String,
    /// As posted: any JSON, or a string holding a non-JSON document.
    pub payload: Payload,
    pub deliveries: Vec<DeliveryOut>,
}

impl From<EventDetails> for EventOut {
    fn from(EventDetails { event, deliveries }: EventDetails) -> Self {
        EventOut {
            id: event.id,
            source_id: event.source_id,
            event_type: event.event_type,
            tenant: event.tenant,
            timestamp: event.timestamp,
            content_type: event.content_type,
            payload: event.payload,
            deliveries: deliveries.into_iter().map(Into::into).collect(),
        }
    }
}

/// 202 once the event and its deliveries are stored; 200 for a repeated
/// source id, with the first answer and `"duplicate": true`.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/events",
    tag = "events",
    params(super::openapi::TenantPath),
    request_body = EventIn,
    responses(
        (status = 202, description = "Stored with its deliveries.", body = IngestOut),
        (status = 200, description = "A repeated source id: the first answer, with `duplicate`.", body = IngestOut),
    ),
)]
async fn ingest(
    State(app): State<App>,
    TenantPublisher(tenant): TenantPublisher,
    ApiJson(event): ApiJson<EventIn>,
) -> Result<(StatusCode, Json<IngestOut>), ApiError> {
    let receipt = app.ingest(&tenant, event.into()).await?;
    let status = if receipt.duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(receipt.into())))
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/events/{id}",
    tag = "events",
    params(super::openapi::EventPath),
    responses(
        (status = 200, description = "The event with its deliveries.", body = EventOut),
        (status = 404, description = "No such event in the tenant.", body = super::openapi::ErrorBody),
    ),
)]
async fn get_event(
    State(app): State<App>,
    TenantAdmin(tenant): TenantAdmin,
    Id(id): Id<EventId>,
) -> Result<Json<EventOut>, ApiError> {
    Ok(Json(app.get_event(&tenant, &id).await?.into()))
}

pub(super) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(ingest))
        .routes(routes!(get_event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Event;
    use serde_json::json;

    #[test]
    fn an_event_answer_is_the_stored_event_and_its_deliveries() {
        let event = Event {
            id: EventId::generate(),
            source_id: Some("src-1".into()),
            event_type: "a.b".into(),
            tenant: "acme".parse().unwrap(),
            timestamp: Timestamp(0),
            content_type: "application/json".into(),
            payload: Payload::from_value(&json!({"n": 1})),
        };
        let delivery = Delivery {
            id: DeliveryId::generate(),
            tenant: event.tenant.clone(),
            event_id: event.id.clone(),
            subscription_id: "s1".parse().unwrap(),
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: Some(Timestamp(0)),
            created_at: Timestamp(0),
        };
        let mut expected = serde_json::to_value(&event).unwrap();
        expected["deliveries"] = json!([{
            "id": delivery.id,
            "subscription_id": "s1",
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": Timestamp(0),
        }]);
        let out = EventOut::from(EventDetails {
            event,
            deliveries: vec![delivery],
        });
        assert_eq!(serde_json::to_value(out).unwrap(), expected);
    }

    #[test]
    fn duplicate_shows_only_when_true() {
        let receipt = |duplicate| IngestReceipt {
            id: "evt_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap(),
            deliveries: 2,
            duplicate,
        };
        let first = serde_json::to_value(IngestOut::from(receipt(false))).unwrap();
        assert_eq!(
            first,
            json!({"id": "evt_01ARZ3NDEKTSV4RRFFQ69G5FAV", "deliveries": 2})
        );
        let again = serde_json::to_value(IngestOut::from(receipt(true))).unwrap();
        assert_eq!(again["duplicate"], true);
    }
}
