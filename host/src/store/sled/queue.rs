//! The due-time queue: the `queue` tree is its durable form, and the
//! [`Schedule`] in memory what claims are made from. The schedule is filled
//! from the tree at open and follows every change that queues or dequeues
//! a delivery: the journal hands each applied change's `queue` writes to
//! [`follow`], once the change's other records are visible.

use parking_lot::Mutex;

use super::SledStore;
use super::commit::Trees;
use super::keys::{parse_queue_key, queued_event};
use super::schedule::Schedule;
use crate::clock::Timestamp;
use crate::ids::DeliveryId;
use crate::store::{Claimed, Release, Result};

#[cfg(test)]
use crate::store::Queued;

/// Due work found by [`SledStore::due`].
#[cfg(test)]
#[derive(Debug, Default, PartialEq)]
pub(super) struct DueWork {
    pub(super) ready: Vec<Queued>,
    /// When the earliest not-yet-due (or skipped) entry falls due, if any.
    pub(super) next_due: Option<Timestamp>,
}

/// The subscription part (`tenant \0 sub_id`) of a `queue` value.
pub(super) fn subscription_key(value: &[u8]) -> &[u8] {
    let mut zeros = value.iter().enumerate().filter(|(_, b)| **b == 0);
    match zeros.nth(1) {
        Some((i, _)) => &value[..i],
        None => value,
    }
}

/// Applies `queue` writes to the schedule: `(key, Some(value))` queues,
/// `(key, None)` dequeues.
pub(super) fn follow<'a>(
    schedule: &Mutex<Schedule>,
    writes: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
) {
    let mut writes = writes.into_iter().peekable();
    if writes.peek().is_none() {
        return;
    }
    let mut schedule = schedule.lock();
    for (key, value) in writes {
        let Some((due, id)) = parse_queue_key(key) else {
            continue;
        };
        match value {
            Some(value) => {
                schedule.insert(id, due, subscription_key(value).into(), queued_event(value))
            }
            None => schedule.remove(id, due),
        }
    }
}

/// Fills the schedule from the `queue` tree (at open), a chunk at a time:
/// holding every record read at once would add their size to the peak.
pub(super) fn load(trees: &Trees) -> Result<()> {
    const CHUNK: usize = 1024;
    let mut records = trees.queue.iter();
    loop {
        let chunk = records
            .by_ref()
            .take(CHUNK)
            .collect::<sled::Result<Vec<_>>>()?;
        if chunk.is_empty() {
            return Ok(());
        }
        follow(
            &trees.schedule,
            chunk.iter().map(|(k, v)| (k.as_ref(), Some(v.as_ref()))),
        );
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
        Ok(self
            .inner
            .trees
            .schedule
            .lock()
            .claim_due(now, limit, per_subscription))
    }

    /// Ends a claim (see [`Schedule::release`]).
    pub fn release(&self, id: &DeliveryId, how: Release) {
        self.inner.trees.schedule.lock().release(id, how);
    }

    /// Runnable deliveries due at `now`, earliest first, at most `limit`,
    /// passing over those `skip` names, without claiming them.
    #[cfg(test)]
    pub(super) fn due(
        &self,
        now: Timestamp,
        limit: usize,
        skip: impl Fn(&DeliveryId) -> bool,
    ) -> Result<DueWork> {
        let (ready, next_due) = self.inner.trees.schedule.lock().due(now, limit, skip);
        Ok(DueWork { ready, next_due })
    }
}
