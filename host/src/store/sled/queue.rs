//! The due-time queue: scanning it from a cursor, and the claims that hand
//! each due delivery to one attempt at a time.
//!
//! A delivery stays queued until its attempt is recorded, so a scan from
//! the start would walk past every delivery in flight on every wake-up,
//! which costs more than the deliveries. Scans resume past the last entry
//! handed out; entries only land behind that cursor when something is
//! queued before it (a retry or ordered head due earlier, a delivery
//! committed after a younger one), and the commit thread reports the lowest
//! position queued since the last look, from which the next scan restarts.

use std::collections::HashMap;
use std::ops::Bound;

use super::SledStore;
use super::keys::{parse_queue_key, queued_event};
use crate::clock::Timestamp;
use crate::ids::DeliveryId;
use crate::store::{Claimed, Queued, Release, Result};

/// Due work found by [`SledStore::due`].
#[derive(Debug, Default, PartialEq)]
pub(super) struct DueWork {
    pub(super) ready: Vec<Queued>,
    /// When the earliest not-yet-due (or skipped) entry falls due, if any.
    pub(super) next_due: Option<Timestamp>,
    /// Where the last ready entry sits in the queue: the next scan can start
    /// after it instead of walking past everything already handed out.
    pub(super) last: Option<QueuePosition>,
}

/// A place in the due-time queue (an entry's key), ordered as the queue is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct QueuePosition(::sled::IVec);

/// What is handed out and not yet released, and where the next scan starts.
pub(super) struct Claims {
    /// Each claimed delivery's subscription (its `tenant \0 sub_id` key).
    claimed: HashMap<DeliveryId, Vec<u8>>,
    /// Claimed deliveries per subscription key.
    per_subscription: HashMap<Vec<u8>, usize>,
    cursor: Bound<QueuePosition>,
    /// The lowest entry a scan passed over because its subscription had
    /// its share in flight: the scan after a release starts there, or it
    /// would be left behind the cursor.
    capped_from: Option<QueuePosition>,
}

impl Default for Claims {
    fn default() -> Self {
        Claims {
            claimed: HashMap::new(),
            per_subscription: HashMap::new(),
            cursor: Bound::Unbounded,
            capped_from: None,
        }
    }
}

/// The subscription part (`tenant \0 sub_id`) of a `queue` value.
fn subscription_key(value: &[u8]) -> &[u8] {
    let mut zeros = value.iter().enumerate().filter(|(_, b)| **b == 0);
    match zeros.nth(1) {
        Some((i, _)) => &value[..i],
        None => value,
    }
}

/// Where a scan starts, given where the last one ended and the lowest
/// position queued since: everything runnable before that position was
/// already handed out, so the scan resumes there rather than at the start.
pub(super) fn rewind(
    cursor: Bound<QueuePosition>,
    queued: Option<QueuePosition>,
) -> Bound<QueuePosition> {
    match (cursor, queued) {
        (Bound::Excluded(c) | Bound::Included(c), Some(q)) if q <= c => Bound::Included(q),
        (cursor, _) => cursor,
    }
}

impl SledStore {
    /// Claims up to `limit` due deliveries not already claimed, at most
    /// `per_subscription` claimed at once for any one subscription.
    pub fn claim_due(
        &self,
        now: Timestamp,
        limit: usize,
        per_subscription: usize,
    ) -> Result<Claimed> {
        // Taken before the scan: whatever is queued after this is followed
        // by another wake-up of the dispatcher.
        let queued = self.take_queued_since();
        let mut claims = self.inner.claims.lock();
        let Claims {
            claimed,
            per_subscription: counts,
            cursor,
            capped_from,
        } = &mut *claims;
        *cursor = rewind(std::mem::replace(cursor, Bound::Unbounded), queued);
        let mut capped = None;
        let work = self.due_after(now, limit, cursor.as_ref(), |id, key, value| {
            if claimed.contains_key(id) {
                return true;
            }
            let sub = subscription_key(value);
            let count = counts.entry(sub.to_vec()).or_default();
            if *count >= per_subscription {
                capped.get_or_insert_with(|| QueuePosition(key.into()));
                return true;
            }
            *count += 1;
            claimed.insert(id.clone(), sub.to_vec());
            false
        })?;
        if let Some(last) = work.last {
            *cursor = Bound::Excluded(last);
        }
        if let Some(c) = capped {
            *capped_from = Some(capped_from.take().map_or(c.clone(), |f| f.min(c)));
        }
        Ok(Claimed {
            ready: work.ready,
            next_due: work.next_due,
        })
    }

    /// Ends a claim. An unrecorded attempt's entry is still queued, behind
    /// the cursor, so the next scan starts from the beginning; a freed share
    /// of a subscription lets the next scan start where entries were passed
    /// over for it.
    pub fn release(&self, id: &DeliveryId, how: Release) {
        let mut claims = self.inner.claims.lock();
        if let Some(sub) = claims.claimed.remove(id)
            && let Some(count) = claims.per_subscription.get_mut(&sub)
        {
            *count -= 1;
            if *count == 0 {
                claims.per_subscription.remove(&sub);
            }
        }
        if how == Release::Unrecorded {
            claims.cursor = Bound::Unbounded;
        } else if let Some(from) = claims.capped_from.take() {
            let cursor = std::mem::replace(&mut claims.cursor, Bound::Unbounded);
            claims.cursor = rewind(cursor, Some(from));
        }
    }

    /// Runnable deliveries due at `now`, earliest first, at most `limit`,
    /// passing over those `skip` says are already running.
    #[cfg(test)]
    pub(super) fn due(
        &self,
        now: Timestamp,
        limit: usize,
        skip: impl Fn(&DeliveryId) -> bool,
    ) -> Result<DueWork> {
        self.due_after(now, limit, Bound::Unbounded, |id, _, _| skip(id))
    }

    /// [`SledStore::due`] looking only from `from` on. Entries before it are
    /// not seen: see [`SledStore::take_queued_since`] for when that is safe.
    /// `skip` sees each due entry (its delivery id, key and value) until the
    /// limit is reached, and every entry it does not skip is handed out.
    pub(super) fn due_after(
        &self,
        now: Timestamp,
        limit: usize,
        from: Bound<&QueuePosition>,
        mut skip: impl FnMut(&DeliveryId, &[u8], &[u8]) -> bool,
    ) -> Result<DueWork> {
        let start = from.map(|p| p.0.clone());
        let mut work = DueWork::default();
        for kv in self.inner.trees.queue.range((start, Bound::Unbounded)) {
            let (k, v) = kv?;
            let Some((due, id)) = parse_queue_key(&k) else {
                continue;
            };
            if due > now {
                work.next_due = Some(work.next_due.map_or(due, |n| n.min(due)));
                break;
            }
            if work.ready.len() == limit {
                work.next_due = Some(due);
                break;
            }
            if skip(&id, &k, &v) {
                continue;
            }
            work.ready.push(Queued {
                id,
                event: queued_event(&v),
            });
            work.last = Some(QueuePosition(k));
        }
        Ok(work)
    }

    /// The lowest queue position written since the last call (or a lower
    /// bound of it), if anything was queued. Noted once the entry is visible
    /// to [`SledStore::due_after`], so a reader that calls this before scanning
    /// from a position learns whether an entry may have landed behind that
    /// position. Ids grow with time, so fresh deliveries due now land after
    /// a position handed out earlier, even in the same millisecond.
    pub(super) fn take_queued_since(&self) -> Option<QueuePosition> {
        self.inner
            .commit
            .commit
            .lock_low_water()
            .take()
            .map(|key| QueuePosition(key.into()))
    }
}
