//! Retention: the background sweep that deletes what `[retention]` no
//! longer keeps, a bounded chunk at a time so it never holds up ingest.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::{App, AppError};
use crate::config::RetentionConfig;
use crate::store::{Cutoffs, Swept};

/// Records one sweep call looks at: a few milliseconds of work between
/// yields, so writes queued behind its changes wait no longer than that.
const SWEEP_CHUNK: usize = 256;

impl App {
    /// Runs one whole sweep with the configured retention; returns what it deleted.
    pub async fn sweep(&self) -> Result<Swept, AppError> {
        let retention = &self.config().retention;
        let now = self.now();
        let cutoffs = Cutoffs {
            events_before: now.saturating_sub(retention.events),
            attempts_before: now.saturating_sub(retention.attempts),
        };
        let started = Instant::now();
        let mut total = Swept::default();
        loop {
            let swept = self.ctx().store.sweep(&cutoffs, SWEEP_CHUNK).await?;
            total += swept;
            if swept.done {
                break;
            }
            tokio::task::yield_now().await;
        }
        let ended = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.metrics().sweep_finished(
            [
                total.events,
                total.deliveries,
                total.attempts,
                total.plugin_blobs,
            ],
            ended,
            started.elapsed(),
        );
        Ok(total)
    }
}

/// Sweeps every `sweep_interval` until `shutdown` turns true.
pub async fn run(app: App, retention: RetentionConfig, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(retention.sweep_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        match app.sweep().await {
            Ok(s) if s.events + s.attempts + s.plugin_blobs > 0 => tracing::info!(
                events = s.events,
                deliveries = s.deliveries,
                attempts = s.attempts,
                plugin_blobs = s.plugin_blobs,
                "retention sweep"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "retention sweep failed"),
        }
    }
}
