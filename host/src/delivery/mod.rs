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
//! start. A panic inside an attempt (prepare, execute or conclude) is caught
//! at the task's edge: the claim is released after a pause and the delivery
//! runs again, so no panic leaves a delivery claimed forever.

pub mod operational;
pub mod policy;
pub mod render;
pub mod request;
pub mod worker;

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use crate::services::Services;
use crate::store::{Queued, Release};

/// How long in-flight attempts may run on after a shutdown request.
const SHUTDOWN_GRACE_EXTRA: Duration = Duration::from_secs(1);
/// How long a delivery whose attempt panicked stays claimed before it is
/// handed out again, so a panic that repeats does not spin.
const PANIC_PAUSE: Duration = Duration::from_secs(5);

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
            let how = match catch_panic(worker::attempt(&services, &queued)).await {
                Ok(Ok(())) => Release::Done,
                Ok(Err(e)) => {
                    tracing::error!(delivery = %queued.id, error = %e, "recording a delivery attempt failed");
                    Release::Unrecorded
                }
                Err(panic) => {
                    tracing::error!(
                        delivery = %queued.id,
                        panic = panic_message(&*panic),
                        pause = ?PANIC_PAUSE,
                        "a delivery attempt panicked; it runs again after the pause"
                    );
                    let clock = &services.clock;
                    clock.sleep_until(clock.now().saturating_add(PANIC_PAUSE)).await;
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

/// Runs `future` to its end, or to a panic, which it returns instead of
/// unwinding further. The future is not polled again after a panic.
async fn catch_panic<F: Future>(future: F) -> Result<F::Output, Box<dyn Any + Send>> {
    let mut future = pin!(future);
    std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    })
    .await
}

/// The message of a panic payload (`panic!` with a literal or a format).
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_after_an_await_is_caught_and_its_message_kept() {
        let caught = catch_panic(async {
            tokio::task::yield_now().await;
            panic!("header map full: {}", 32768);
        })
        .await;
        let panic = caught.expect_err("the panic is returned");
        assert_eq!(panic_message(&*panic), "header map full: 32768");
        assert_eq!(catch_panic(async { 7 }).await.ok(), Some(7));
    }
}
