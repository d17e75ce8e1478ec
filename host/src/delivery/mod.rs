//! The delivery engine: finds due deliveries, runs each attempt, and keeps
//! the number in flight bounded.
//!
//! The dispatcher loop scans the store's due-time queue (earliest first, no
//! full rescans), hands each due delivery to a task holding one of
//! `max_in_flight` permits, and sleeps until the next due time, a new event,
//! or a finished attempt. A delivery stays in the queue until its attempt is
//! recorded, so after a crash or restart every unfinished delivery simply runs
//! again (at least once). On shutdown it stops picking work, gives in-flight
//! attempts a grace period to finish, and leaves the rest queued for the next
//! start.

pub mod policy;
pub mod request;
pub mod worker;

use std::collections::HashSet;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use crate::clock::SharedClock;
use crate::http_client::HttpClient;
use crate::ids::{DeliveryId, EventId};
use crate::metrics::Metrics;
use crate::model::{Event, Payload, Subscription};
use crate::registry::PluginRegistry;
use crate::store::{QueuePosition, Queued, Store};

/// The delivery settings from `[delivery]`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub retry_schedule: Vec<Duration>,
    pub disable_after_failures: u32,
    pub max_in_flight: usize,
}

/// What attempts need, shared by every task.
pub struct Context {
    pub store: Store,
    pub clock: SharedClock,
    pub client: HttpClient,
    pub plugins: Arc<PluginRegistry>,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
}

/// Why a `verify` test send did not pass.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the test event could not be sent: {0}")]
    Unsendable(String),
    #[error("the endpoint answered {status} to the test event")]
    Status { status: u16 },
    #[error("the endpoint did not answer the test event: {0}")]
    NoResponse(String),
    #[error("the target is refused: {0}")]
    Refused(String),
}

impl Context {
    /// Sends a signed `webhook.test` event to a subscription not yet stored;
    /// passes on a 2xx answer.
    pub async fn verify(&self, sub: &Subscription) -> Result<(), VerifyError> {
        let event = Event {
            id: EventId::generate(),
            source_id: None,
            event_type: "webhook.test".into(),
            tenant: sub.tenant.clone(),
            timestamp: self.clock.now(),
            content_type: "application/json".into(),
            payload: Payload::from_value(&serde_json::json!({
                "subscription_id": sub.id,
                "message": "hookshape test event",
            })),
        };
        let req = request::build(&event, sub, None, self.clock.now())
            .map_err(|e| VerifyError::Unsendable(e.to_string()))?;
        match worker::send(self, &req).await {
            worker::Exchange::Response {
                status: 200..=299, ..
            } => Ok(()),
            worker::Exchange::Response { status, .. } => Err(VerifyError::Status { status }),
            worker::Exchange::Refused(why) => Err(VerifyError::Refused(why)),
            other => Err(VerifyError::NoResponse(format!("{other:?}"))),
        }
    }
}

/// Where the dispatcher scans from next, given where it is and the lowest
/// position queued since its last scan: everything runnable before that
/// position was already handed out, so the scan resumes there rather than
/// at the start (where it would walk past every delivery in flight).
fn rewind(cursor: Bound<QueuePosition>, queued: Option<QueuePosition>) -> Bound<QueuePosition> {
    match (cursor, queued) {
        (Bound::Excluded(c) | Bound::Included(c), Some(q)) if q <= c => Bound::Included(q),
        (cursor, _) => cursor,
    }
}

/// How long in-flight attempts may run on after a shutdown request.
const SHUTDOWN_GRACE_EXTRA: Duration = Duration::from_secs(1);

pub struct Engine {
    ctx: Arc<Context>,
    wake: Arc<Notify>,
    in_flight: Arc<Mutex<HashSet<DeliveryId>>>,
    permits: Arc<Semaphore>,
    /// Set when an attempt could not be recorded: its entry is still queued,
    /// behind the dispatcher's cursor.
    unrecorded: Arc<AtomicBool>,
}

impl Engine {
    pub fn new(ctx: Arc<Context>) -> Self {
        let permits = Arc::new(Semaphore::new(ctx.settings.max_in_flight.max(1)));
        Engine {
            ctx,
            wake: Arc::new(Notify::new()),
            in_flight: Default::default(),
            permits,
            unrecorded: Default::default(),
        }
    }

    /// Tells the dispatcher there may be new due work (after ingest or resend).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Runs until `shutdown` turns true; then waits up to `grace` for the
    /// attempts in flight and returns.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let mut tasks = JoinSet::new();
        // Past the last entry handed out: in-flight deliveries stay queued
        // until recorded, and walking past them on every wake-up would cost
        // more than the deliveries. Entries only land behind the cursor when
        // something is queued before it (a retry or ordered head due earlier,
        // a delivery committed after a younger one); the store reports the
        // lowest position queued since the last look, and only then is the
        // scan restarted.
        let mut cursor: Bound<QueuePosition> = Bound::Unbounded;
        loop {
            if *shutdown.borrow() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            let now = self.ctx.clock.now();
            let free = self.permits.available_permits();
            let mut next_due = None;
            if free > 0 {
                // Taken before the scan: whatever is queued after this is
                // followed by another wake-up.
                let queued = self.ctx.store.take_queued_since();
                let unrecorded = self.unrecorded.swap(false, Ordering::SeqCst);
                cursor = if unrecorded {
                    Bound::Unbounded
                } else {
                    rewind(cursor, queued)
                };
                let work = {
                    let running = self.in_flight.lock();
                    self.ctx
                        .store
                        .due_after(now, free, cursor.as_ref(), |id| running.contains(id))
                };
                match work {
                    Ok(work) => {
                        let limited = work.ready.len() == free;
                        if let Some(last) = work.last {
                            cursor = Bound::Excluded(last);
                        }
                        for queued in work.ready {
                            if !self.spawn(&mut tasks, queued) {
                                // Left behind the cursor: look from the start.
                                cursor = Bound::Unbounded;
                            }
                        }
                        if limited {
                            continue;
                        }
                        next_due = work.next_due;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reading the delivery queue failed");
                        next_due = Some(now.saturating_add(Duration::from_secs(1)));
                    }
                }
            }
            let clock = self.ctx.clock.clone();
            let sleep = async move {
                match next_due {
                    Some(t) => clock.sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = sleep => {}
                _ = shutdown.changed() => {}
            }
        }
        let running = tasks.len();
        if running > 0 {
            tracing::info!(running, "waiting for in-flight deliveries");
        }
        let drained = tokio::time::timeout(grace + SHUTDOWN_GRACE_EXTRA, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = tasks.len(),
                "in-flight deliveries handed back to the queue"
            );
            tasks.abort_all();
        }
    }

    /// Starts an attempt; `false` when no permit was free.
    fn spawn(&self, tasks: &mut JoinSet<()>, queued: Queued) -> bool {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return false;
        };
        self.in_flight.lock().insert(queued.id.clone());
        self.ctx.metrics.in_flight_started();
        let ctx = self.ctx.clone();
        let in_flight = self.in_flight.clone();
        let wake = self.wake.clone();
        let unrecorded = self.unrecorded.clone();
        tasks.spawn(async move {
            if let Err(e) = worker::attempt(&ctx, &queued).await {
                unrecorded.store(true, Ordering::SeqCst);
                tracing::error!(delivery = %queued.id, error = %e, "recording a delivery attempt failed");
            }
            in_flight.lock().remove(&queued.id);
            drop(permit);
            ctx.metrics.in_flight_ended();
            wake.notify_one();
        });
        true
    }
}
