//! Delivery: the dispatcher loop, one attempt ([`worker`]), what an answer
//! means ([`policy`]), what an attempt would send ([`render`], shared with the
//! dry runs) and the outgoing request ([`request`]).
//!
//! The [`Dispatcher`] claims due deliveries from the store's due-time queue
//! (earliest first), hands each to a task holding one of `max_in_flight`
//! permits, and sleeps until the next due time, a new event, or a finished
//! attempt. A delivery stays in the queue until its attempt is recorded, so
//! after a crash or restart every unfinished delivery simply runs again (at
//! least once). On shutdown it stops picking work, gives in-flight
//! attempts a grace period to finish, and leaves the rest queued for the next
//! start.

pub mod operational;
pub mod policy;
pub mod render;
pub mod request;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use crate::services::Services;
use crate::store::{Queued, Release};

/// How long in-flight attempts may run on after a shutdown request.
const SHUTDOWN_GRACE_EXTRA: Duration = Duration::from_secs(1);

/// The dispatcher loop: claims due deliveries and runs their attempts.
pub struct Dispatcher {
    services: Arc<Services>,
    wake: Arc<Notify>,
    permits: Arc<Semaphore>,
}

impl Dispatcher {
    /// A dispatcher over the services, running at most `max_in_flight` attempts at once.
    pub fn new(services: Arc<Services>) -> Self {
        let permits = Arc::new(Semaphore::new(services.settings.max_in_flight.max(1)));
        Dispatcher {
            services,
            wake: Arc::new(Notify::new()),
            permits,
        }
    }

    /// Tells the dispatcher there may be new due work (after ingest or resend).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Runs until `shutdown` turns true; then waits up to `grace` for the
    /// attempts in flight and returns.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let mut tasks = JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            let now = self.services.clock.now();
            let free = self.permits.available_permits();
            let mut next_due = None;
            if free > 0 {
                let per_subscription = self.services.settings.max_in_flight_per_subscription;
                let claimed = self
                    .services
                    .store
                    .claim_due(now, free, per_subscription)
                    .await;
                match claimed {
                    Ok(claimed) => {
                        let limited = claimed.ready.len() == free;
                        for queued in claimed.ready {
                            self.spawn(&mut tasks, queued);
                        }
                        if limited {
                            continue;
                        }
                        next_due = claimed.next_due;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reading the delivery queue failed");
                        next_due = Some(now.saturating_add(Duration::from_secs(1)));
                    }
                }
            }
            let clock = self.services.clock.clone();
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

    /// Starts an attempt of a claimed delivery. Only this loop takes
    /// permits, and it claims no more than are free, so one is always there;
    /// were it not, the claim goes back.
    fn spawn(&self, tasks: &mut JoinSet<()>, queued: Queued) {
        let store = &self.services.store;
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            store.release(&queued.id, Release::Unrecorded);
            return;
        };
        self.services.metrics.in_flight_started();
        let services = self.services.clone();
        let wake = self.wake.clone();
        tasks.spawn(async move {
            let how = match worker::attempt(&services, &queued).await {
                Ok(()) => Release::Done,
                Err(e) => {
                    tracing::error!(delivery = %queued.id, error = %e, "recording a delivery attempt failed");
                    Release::Unrecorded
                }
            };
            services.store.release(&queued.id, how);
            drop(permit);
            services.metrics.in_flight_ended();
            wake.notify_one();
        });
    }
}
