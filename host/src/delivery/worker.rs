//! One delivery attempt, in three small steps: [`prepare`] loads what the
//! attempt needs (or finds it should not run), [`execute`] runs the plugin and
//! makes the HTTP call, [`conclude`] decides what the result means for the
//! delivery and the subscription. Only [`attempt`] touches the store's write
//! side, in one atomic change (batched with other attempts and ingests).

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use crate::clock::Timestamp;
use crate::delivery::operational;
use crate::delivery::policy::{self, Next, Verdict};
use crate::delivery::request::{self, OutgoingRequest, RequestError};
use crate::headers;
use crate::http_client::{self, SendError};
use crate::ids::AttemptId;
use crate::model::{
    Attempt, AttemptOutcome, Delivery, DeliveryState, Event, LogLine, Subscription, kept_body,
};
use crate::plugin::{Outcome, TransformInput};
use crate::services::{Services, Settings};
use crate::store::{AttemptResult, Queued, StoreError};

/// Everything an attempt needs, loaded before it starts.
#[derive(Debug)]
pub struct Job {
    /// The delivery to attempt.
    pub delivery: Delivery,
    /// The event it carries.
    pub event: Event,
    /// The subscription it goes to.
    pub subscription: Arc<Subscription>,
}

/// What happened on the wire (or before it).
#[derive(Debug)]
pub enum Exchange {
    /// The plugin chose not to send.
    Skipped(String),
    /// The plugin failed, or produced a request hookshape will not send.
    TransformFailed(String),
    /// The subscription itself cannot produce a valid request.
    Invalid(String),
    /// The target resolved to an address hookshape may not call.
    Refused(String),
    /// No HTTP answer: connect, TLS or protocol failure, timeout.
    NoResponse(String),
    /// The receiver answered.
    Response {
        /// The HTTP status.
        status: u16,
        /// The response headers.
        headers: http::HeaderMap,
        /// The response body, as much as was read.
        body: bytes::Bytes,
    },
}

/// The attempt's raw record, before its meaning is decided.
#[derive(Debug)]
pub struct Executed {
    /// How the exchange went.
    pub exchange: Exchange,
    /// The request sent; none when it never got that far.
    pub request: Option<OutgoingRequest>,
    /// What the plugin logged.
    pub logs: Vec<LogLine>,
    /// The plugin version that ran, when one did.
    pub plugin_sha256: Option<String>,
    /// How long the plugin ran, when one did.
    pub transform_time: Option<Duration>,
    /// How long the whole attempt took.
    pub duration: Duration,
}

/// When an attempt started, and its id, made together: attempts are listed
/// by id, newest first, so ids must sort as the `created_at` shown does.
#[derive(Debug, Clone)]
pub struct Start {
    /// The attempt's id, generated at its start.
    pub id: AttemptId,
    /// When the attempt started.
    pub at: Timestamp,
}

impl Start {
    /// An attempt starting at `at`, with a fresh id.
    pub fn at(at: Timestamp) -> Start {
        Start {
            id: AttemptId::generate(),
            at,
        }
    }
}

/// Runs one attempt of a delivery end to end, in a span naming the
/// delivery, its event and subscription.
#[tracing::instrument(skip_all, fields(delivery_id = %queued.id, event_id, subscription_id))]
pub async fn attempt(ctx: &Services, queued: &Queued) -> Result<(), StoreError> {
    let Some(job) = prepare(ctx, queued).await? else {
        return Ok(());
    };
    let span = tracing::Span::current();
    span.record("event_id", tracing::field::display(&job.event.id));
    span.record(
        "subscription_id",
        tracing::field::display(&job.subscription.id),
    );
    let start = Start::at(ctx.clock.now());
    let executed = execute(ctx, &job, start.at).await;
    if let Some(t) = executed.transform_time {
        ctx.metrics.transform_finished(t);
    }
    let result = conclude(&job, executed, start, ctx.clock.now(), &ctx.settings);
    ctx.store
        .record_attempt(&result, job.subscription.ordered, ctx.clock.now())
        .await?;
    tracing::debug!(
        outcome = ?result.attempt.outcome,
        state = ?result.delivery.state,
        "attempt recorded"
    );
    ctx.metrics.attempt_finished(
        result.attempt.outcome,
        Duration::from_millis(result.attempt.duration_ms),
    );
    if result.delivery.state.is_final() {
        ctx.metrics.delivery_finished(result.delivery.state);
    }
    if let Some(sub) = result.subscription.as_ref().filter(|s| !s.enabled) {
        tracing::warn!(subscription = %sub.id, tenant = %sub.tenant, reason = ?sub.disabled_reason, "subscription disabled");
        ctx.store.cancel_pending(&sub.tenant, &sub.id).await?;
    }
    // The attempt is recorded whatever happens here: a report that cannot
    // be stored is logged, not retried.
    for report in operational::reports(&job, &result, ctx.clock.now()) {
        if let Err(e) = ctx.publish(&report).await {
            tracing::error!(error = %e, event_type = %report.event_type, "storing an operational event failed");
        }
    }
    Ok(())
}

/// Loads the delivery, its event and subscription; `None` when there is
/// nothing to do (already final, or the subscription is gone or disabled, in
/// which case its pending deliveries are cancelled).
pub async fn prepare(ctx: &Services, queued: &Queued) -> Result<Option<Job>, StoreError> {
    let Some((delivery, event)) = ctx.store.attempt_inputs(queued).await? else {
        tracing::error!(delivery = %queued.id, "a queued delivery or its event is missing");
        return Ok(None);
    };
    if delivery.state != DeliveryState::Pending {
        return Ok(None);
    }
    match ctx
        .store
        .current_subscription(&delivery.tenant, &delivery.subscription_id)
    {
        Some(subscription) if subscription.enabled => Ok(Some(Job {
            delivery,
            event,
            subscription,
        })),
        _ => {
            ctx.store
                .cancel_pending(&delivery.tenant, &delivery.subscription_id)
                .await?;
            Ok(None)
        }
    }
}

/// Runs the plugin (if any), builds the signed request and sends it.
pub async fn execute(ctx: &Services, job: &Job, now: Timestamp) -> Executed {
    let started = Instant::now();
    let mut executed = Executed {
        exchange: Exchange::Invalid(String::new()),
        request: None,
        logs: Vec::new(),
        plugin_sha256: None,
        transform_time: None,
        duration: Duration::ZERO,
    };
    let sub = &job.subscription;
    let transformed = match &sub.plugin {
        None => None,
        Some(name) => {
            let Some(plugin) = ctx.plugins.get_or_fetch(name).await else {
                executed.exchange =
                    Exchange::TransformFailed(format!("plugin {name} is not installed"));
                executed.duration = started.elapsed();
                return executed;
            };
            let config_json = match &sub.plugin_config {
                serde_json::Value::Null => "{}".to_owned(),
                v => v.to_string(),
            };
            let input = TransformInput {
                event: &job.event,
                subscription_id: sub.id.as_str(),
                url: &sub.url,
                config_json: &config_json,
            };
            let report = ctx
                .plugins
                .runtime()
                .transform(&plugin.loaded, plugin.limits, input)
                .await;
            executed.plugin_sha256 = Some(plugin.loaded.sha256.clone());
            executed.logs = report.logs;
            executed.transform_time = Some(report.duration);
            match report.result {
                Ok(Outcome::Deliver(req)) => Some(req),
                Ok(Outcome::Skip(reason)) => {
                    executed.exchange = Exchange::Skipped(reason);
                    executed.duration = started.elapsed();
                    return executed;
                }
                Err(e) => {
                    executed.exchange = Exchange::TransformFailed(e.to_string());
                    executed.duration = started.elapsed();
                    return executed;
                }
            }
        }
    };
    let request = match request::build(&job.event, sub, transformed.as_ref(), now) {
        Ok(r) => r,
        Err(e @ RequestError::BadContentType(_)) => {
            executed.exchange = Exchange::TransformFailed(e.to_string());
            executed.duration = started.elapsed();
            return executed;
        }
        Err(e) => {
            executed.exchange = Exchange::Invalid(e.to_string());
            executed.duration = started.elapsed();
            return executed;
        }
    };
    executed.exchange = send(ctx, &request).await;
    executed.request = Some(request);
    executed.duration = started.elapsed();
    executed
}

/// Sends a prepared request with the one shared client.
pub async fn send(ctx: &Services, request: &OutgoingRequest) -> Exchange {
    match ctx
        .client
        .post(&request.url, request.headers.clone(), request.body.clone())
        .await
    {
        Ok(r) => Exchange::Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        },
        Err(SendError::Refused(why)) => Exchange::Refused(why),
        Err(e) => Exchange::NoResponse(e.to_string()),
    }
}

/// Turns an executed attempt into the records to write: the attempt, the
/// delivery's next state, and the subscription if its health changed.
pub fn conclude(
    job: &Job,
    executed: Executed,
    start: Start,
    now: Timestamp,
    settings: &Settings,
) -> AttemptResult {
    let attempt_no = job.delivery.attempts + 1;
    let mut status_code = None;
    let mut response_body = None;
    let mut error = None;
    let (outcome, verdict) = match executed.exchange {
        Exchange::Skipped(reason) => {
            error = Some(reason);
            (AttemptOutcome::Skipped, None)
        }
        Exchange::TransformFailed(why) => {
            error = Some(why);
            (
                AttemptOutcome::TransformFailed,
                Some(Verdict::Retryable { retry_after: None }),
            )
        }
        Exchange::Invalid(why) => {
            error = Some(why);
            (AttemptOutcome::Failed, Some(Verdict::Permanent))
        }
        Exchange::Refused(why) => {
            error = Some(format!("target refused: {why}"));
            (AttemptOutcome::Refused, Some(Verdict::Permanent))
        }
        Exchange::NoResponse(why) => {
            error = Some(why);
            (
                AttemptOutcome::Failed,
                Some(Verdict::Retryable { retry_after: None }),
            )
        }
        Exchange::Response {
            status,
            headers,
            body,
        } => {
            status_code = Some(status);
            response_body = Some(kept_body(&body));
            let wall = UNIX_EPOCH + Duration::from_millis(now.as_millis());
            let verdict = policy::classify_status(status, http_client::retry_after(&headers, wall));
            if verdict == Verdict::Delivered {
                (AttemptOutcome::Delivered, Some(verdict))
            } else {
                error = Some(format!("the endpoint answered {status}"));
                (AttemptOutcome::Failed, Some(verdict))
            }
        }
    };
    let next = verdict.map(|v| policy::next(v, attempt_no, &settings.retry_schedule));
    let mut delivery = job.delivery.clone();
    delivery.attempts = attempt_no;
    (delivery.state, delivery.next_attempt_at) = match next {
        None => (DeliveryState::Skipped, None),
        Some(Next::Delivered) => (DeliveryState::Delivered, None),
        Some(Next::RetryIn(wait)) => (DeliveryState::Pending, Some(now.saturating_add(wait))),
        Some(Next::GiveUp) => (DeliveryState::Failed, None),
    };
    let subscription =
        subscription_health(&job.subscription, delivery.state, verdict, settings, now);
    let (request_headers, request_body) = match &executed.request {
        Some(r) => (
            r.headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), headers::stored_value(k.as_str(), v)))
                .collect(),
            Some(kept_body(&r.body)),
        ),
        None => (Default::default(), None),
    };
    let attempt = Attempt {
        id: start.id,
        tenant: job.delivery.tenant.clone(),
        delivery_id: job.delivery.id.clone(),
        event_id: job.event.id.clone(),
        event_type: job.event.event_type.clone(),
        subscription_id: job.subscription.id.clone(),
        created_at: start.at,
        attempt: attempt_no,
        outcome,
        status_code,
        duration_ms: executed.duration.as_millis() as u64,
        request_headers,
        request_body_truncated: request_body.as_ref().is_some_and(|(_, cut)| *cut),
        request_body: request_body.map(|(b, _)| b),
        response_body_truncated: response_body.as_ref().is_some_and(|(_, cut)| *cut),
        response_body: response_body.map(|(b, _)| b),
        plugin_logs: executed.logs,
        plugin_sha256: executed.plugin_sha256,
        error,
    };
    AttemptResult {
        attempt,
        delivery,
        subscription,
        found: job.delivery.clone(),
    }
}

/// The subscription after a delivery step, when it changed: the failure
/// streak resets on success, grows on a final failure, and 410 or too long a
/// streak disables it.
fn subscription_health(
    sub: &Subscription,
    state: DeliveryState,
    verdict: Option<Verdict>,
    settings: &Settings,
    now: Timestamp,
) -> Option<Subscription> {
    let mut s = sub.clone();
    match state {
        DeliveryState::Delivered if sub.consecutive_failures > 0 => s.consecutive_failures = 0,
        DeliveryState::Failed => {
            s.consecutive_failures += 1;
            if verdict == Some(Verdict::Gone) {
                s.enabled = false;
                s.disabled_reason = Some("the endpoint answered 410 Gone".into());
            } else if settings.disable_after_failures > 0
                && s.consecutive_failures >= settings.disable_after_failures
            {
                s.enabled = false;
                s.disabled_reason = Some(format!(
                    "{} deliveries in a row failed",
                    s.consecutive_failures
                ));
            }
        }
        _ => return None,
    }
    s.updated_at = now;
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{DeliveryId, EventId};
    use crate::services::Settings;

    fn job() -> Job {
        let event = Event {
            id: EventId::generate(),
            source_id: None,
            event_type: "t".into(),
            tenant: "acme".parse().unwrap(),
            timestamp: Timestamp(0),
            content_type: "application/json".into(),
            payload: crate::model::Payload::from_value(&serde_json::json!({})),
        };
        let subscription = Subscription {
            url: "https://example.com/".into(),
            ..Subscription::for_tests("s")
        };
        let delivery = Delivery {
            id: DeliveryId::generate(),
            tenant: "acme".parse().unwrap(),
            event_id: event.id.clone(),
            subscription_id: subscription.id.clone(),
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: Some(Timestamp(0)),
            created_at: Timestamp(0),
        };
        Job {
            delivery,
            event,
            subscription: Arc::new(subscription),
        }
    }

    fn settings(disable_after: u32) -> Settings {
        Settings {
            retry_schedule: vec![Duration::from_secs(5), Duration::from_secs(60)],
            disable_after_failures: disable_after,
            max_in_flight: 4,
            max_in_flight_per_subscription: 4,
        }
    }

    fn executed(exchange: Exchange) -> Executed {
        Executed {
            exchange,
            request: None,
            logs: vec![],
            plugin_sha256: None,
            transform_time: None,
            duration: Duration::from_millis(7),
        }
    }

    fn response(status: u16, headers: &[(&str, &str)]) -> Exchange {
        let mut h = http::HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Exchange::Response {
            status,
            headers: h,
            body: bytes::Bytes::from_static(b"nope"),
        }
    }

    #[test]
    fn a_5xx_is_rescheduled_on_the_schedule() {
        let r = conclude(
            &job(),
            executed(response(503, &[])),
            Start::at(Timestamp(1000)),
            Timestamp(1000),
            &settings(0),
        );
        assert_eq!(r.attempt.outcome, AttemptOutcome::Failed);
        assert_eq!(r.attempt.status_code, Some(503));
        assert_eq!(r.attempt.response_body.as_deref(), Some("nope"));
        assert_eq!(r.delivery.state, DeliveryState::Pending);
        assert_eq!(r.delivery.next_attempt_at, Some(Timestamp(6000)));
        assert!(r.subscription.is_none());
    }

    #[test]
    fn stored_attempts_keep_header_names_but_not_credentials() {
        let mut headers = http::HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer x"),
            ("x-api-key", "abc"),
            ("x-team", "data"),
        ] {
            headers.insert(http::HeaderName::from_static(k), v.parse().unwrap());
        }
        let mut e = executed(response(200, &[]));
        e.request = Some(OutgoingRequest {
            url: "https://example.com/".parse().unwrap(),
            headers,
            body: bytes::Bytes::from_static(b"{}"),
        });
        let r = conclude(
            &job(),
            e,
            Start::at(Timestamp(0)),
            Timestamp(0),
            &settings(0),
        );
        let stored = &r.attempt.request_headers;
        assert_eq!(stored["authorization"], "[redacted]");
        assert_eq!(stored["x-api-key"], "[redacted]");
        assert_eq!(stored["x-team"], "data");
    }

    #[test]
    fn retry_after_seconds_stretch_the_wait() {
        let r = conclude(
            &job(),
            executed(response(429, &[("retry-after", "30")])),
            Start::at(Timestamp(0)),
            Timestamp(0),
            &settings(0),
        );
        assert_eq!(r.delivery.next_attempt_at, Some(Timestamp(30_000)));
    }

    #[test]
    fn exhausted_retries_fail_and_count_toward_disabling() {
        let mut j = job();
        j.delivery.attempts = 2;
        Arc::make_mut(&mut j.subscription).consecutive_failures = 2;
        let r = conclude(
            &j,
            executed(Exchange::NoResponse("connection refused".into())),
            Start::at(Timestamp(0)),
            Timestamp(0),
            &settings(3),
        );
        assert_eq!(r.delivery.state, DeliveryState::Failed);
        assert_eq!(r.delivery.next_attempt_at, None);
        assert_eq!(r.attempt.attempt, 3);
        let sub = r.subscription.unwrap();
        assert!(!sub.enabled);
        assert_eq!(
            sub.disabled_reason.as_deref(),
            Some("3 deliveries in a row failed")
        );
    }

    #[test]
    fn gone_disables_at_once_and_4xx_is_not_retried() {
        let r = conclude(
            &job(),
            executed(response(410, &[])),
            Start::at(Timestamp(0)),
            Timestamp(0),
            &settings(0),
        );
        assert_eq!(r.delivery.state, DeliveryState::Failed);
        assert!(!r.subscription.unwrap().enabled);
        let r = conclude(
            &job(),
            executed(response(400, &[])),
            Start::at(Timestamp(0)),
            Timestamp(0),
            &settings(0),
        );
        assert_eq!(r.delivery.state, DeliveryState::Failed);
        assert!(r.subscription.unwrap().enabled);
    }

    #[test]
    fn skip_ends_the_delivery_and_transform_failure_retries() {
        let r = conclude(
            &job(),
            executed(Exchange::Skipped("below threshold".into())),
            Start::at(Timestamp(0)),
            Timestamp(0),
            &settings(0),
        );
        assert_eq!(r.attempt.outcome, AttemptOutcome::Skipped);
        assert_eq!(r.delivery.state, DeliveryState::Skipped);
        assert_eq!(r.attempt.error.as_deref(), Some("below threshold"));
        let r = conclude(
            &job(),
            executed(Exchange::TransformFailed("trap".into())),
            Start::at(Timestamp(0)),
            Timestamp(0),
            &settings(0),
        );
        assert_eq!(r.attempt.outcome, AttemptOutcome::TransformFailed);
        assert_eq!(r.delivery.state, DeliveryState::Pending);
    }

    #[test]
    fn success_resets_the_failure_streak() {
        let mut j = job();
        Arc::make_mut(&mut j.subscription).consecutive_failures = 4;
        let r = conclude(
            &j,
            executed(response(204, &[])),
            Start::at(Timestamp(0)),
            Timestamp(0),
            &settings(10),
        );
        assert_eq!(r.delivery.state, DeliveryState::Delivered);
        assert_eq!(r.subscription.unwrap().consecutive_failures, 0);
        let r = conclude(
            &job(),
            executed(Exchange::Refused("loopback".into())),
            Start::at(Timestamp(0)),
            Timestamp(0),
            &settings(0),
        );
        assert_eq!(r.attempt.outcome, AttemptOutcome::Refused);
        assert_eq!(r.delivery.state, DeliveryState::Failed);
    }
}
