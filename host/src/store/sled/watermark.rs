//! The rebuild watermark: where, after a restart, the search for pending
//! deliveries queued in memory only starts.
//!
//! The first attempt of an unordered delivery kept in its event's record
//! has no `queue` row: its entry lives in the [`Schedule`](super::schedule::Schedule)
//! only, which spares a write at ingest and one when the attempt ends. Such a
//! delivery has no `deliveries` row either until it changes, which is what
//! finds it again: opening the store scans `events` from the saved watermark
//! and queues every delivery a record keeps that has no row and no entry
//! ([`rebuild`]).
//!
//! The commit thread saves the watermark before every flush, so it is
//! durable with the writes it covers: the lowest of the oldest event with an
//! entry in memory only, the oldest one staged for the next batch, and a
//! floor [`FLOOR_LAG`] back (an event's id is made before it is staged).
//! Ingest compares the event with the watermark in force, under the staging
//! lock: an event below it (its id made before the watermark moved past it)
//! gets `queue` rows as before, so every event committed after a watermark
//! is saved sorts at or above it or has rows. Ids sort by creation time, so
//! the watermark only moves forward.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::commit::Trees;
use super::keys::key2;
use super::records::IngestDeliveries;
use crate::ids::EventId;
use crate::model::DeliveryState;
use crate::store::{Result, StoreError};

/// The `meta` key of the saved watermark (an event id).
const KEY: &[u8] = b"rebuild_from";

/// How far back the watermark's floor lies: an ingest whose event id is
/// older when it is staged writes `queue` rows. Also how much of the newest
/// events a start scans when nothing was pending.
const FLOOR_LAG: Duration = Duration::from_secs(1);

/// The lowest event id made at or after `FLOOR_LAG` ago.
fn floor() -> EventId {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(FLOOR_LAG);
    let ulid = ulid::Ulid::from_parts(now.as_millis() as u64, 0);
    format!("{}{ulid}", EventId::PREFIX)
        .parse()
        .expect("a valid event id")
}

/// The watermark: the lowest of `oldest` (in memory only), `staged` (the
/// oldest staged) and the floor.
pub(super) fn lowest(oldest: Option<EventId>, staged: Option<EventId>) -> EventId {
    [oldest, staged]
        .into_iter()
        .flatten()
        .fold(floor(), |low, id| low.min(id))
}

/// Saves the watermark, when it moved.
pub(super) fn save(trees: &Trees, mark: &EventId) -> Result<()> {
    if trees.meta.get(KEY)?.as_deref() != Some(mark.as_str().as_bytes()) {
        trees.meta.insert(KEY, mark.as_str())?;
    }
    Ok(())
}

/// The saved watermark. A store without one never queued in memory only:
/// it starts from the floor, saved at once so the first batch's writes
/// follow it in sled's log.
pub(super) fn load(trees: &Trees) -> Result<EventId> {
    match trees.meta.get(KEY)? {
        Some(saved) => std::str::from_utf8(&saved)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                StoreError::Backend(
                    format!("the saved watermark {saved:?} is not an event id").into(),
                )
            }),
        None => {
            let mark = floor();
            save(trees, &mark)?;
            Ok(mark)
        }
    }
}

/// Queues, in memory, every delivery kept in the records of the events
/// from `from` on that has no row (so it is pending, before its first
/// attempt) and no entry yet; returns how many.
pub(super) fn rebuild(trees: &Trees, from: &EventId) -> Result<usize> {
    let mut schedule = trees.schedule.lock();
    let mut found = 0;
    for kv in trees.events.range(from.as_str().as_bytes()..) {
        let (key, record) = kv?;
        let kept = match IngestDeliveries::read(&key, &record) {
            Ok(kept) => kept,
            Err(e) => {
                tracing::error!(error = %e, "skipping an unreadable event record");
                continue;
            }
        };
        for d in kept.deliveries {
            let Some(due) = d.next_attempt_at else {
                continue;
            };
            if d.state != DeliveryState::Pending
                || schedule.contains(&d.id)
                || trees.deliveries.contains_key(d.id.as_str())?
            {
                continue;
            }
            let sub = key2(d.tenant.as_str(), d.subscription_id.as_str());
            schedule.insert(d.id, due, sub.into(), Some(d.event_id), false);
            found += 1;
        }
    }
    Ok(found)
}
