//! The retention sweep: deleting final events with their deliveries, old
//! attempts and unreferenced plugin blobs, a bounded number at a time.
//!
//! Events and attempts are keyed by ids that sort by creation time, so a
//! pass walks each tree from its oldest record and stops at the first one
//! younger than its cutoff. An old event with a pending delivery is stepped
//! over (and looked at again next pass); the walk resumes from where the
//! last call stopped, so a pass costs each record once.

use std::collections::HashSet;

use super::SledStore;
use super::journal::Slot;
use super::keys::{event_delivery_key, key2, key3};
use super::records::{decode, decode_entry};
use crate::model::{Attempt, DeliveryState, Event};
use crate::store::{Cutoffs, PluginRecord, Result, Swept};

/// Where the current pass stands in each tree.
#[derive(Default)]
pub(super) struct SweepCursor {
    /// The next event key to look at; `None` at the start of a pass.
    events: Option<Vec<u8>>,
    events_done: bool,
}

impl SledStore {
    /// See [`crate::store::Store::sweep`].
    pub fn sweep(&self, cutoffs: &Cutoffs, budget: usize) -> Result<Swept> {
        let mut swept = Swept::default();
        let mut cursor = self.inner.sweep.lock();
        let mut left = budget;
        if !cursor.events_done {
            left = self.sweep_events(&mut cursor, cutoffs, left, &mut swept)?;
        }
        if cursor.events_done && left > 0 {
            let attempts_done = self.sweep_attempts(cutoffs, &mut left, &mut swept)?;
            if attempts_done && left > 0 {
                swept.plugin_blobs = self.sweep_plugin_blobs()?;
                swept.done = true;
                *cursor = SweepCursor::default();
            }
        }
        Ok(swept)
    }

    /// Looks at up to `left` events from the cursor; returns what is left.
    fn sweep_events(
        &self,
        cursor: &mut SweepCursor,
        cutoffs: &Cutoffs,
        mut left: usize,
        swept: &mut Swept,
    ) -> Result<usize> {
        let trees = &self.inner.trees;
        let from = cursor.events.take().unwrap_or_default();
        let mut next = None;
        for kv in trees.events.range(from..) {
            if left == 0 {
                next = Some(kv?.0.to_vec());
                break;
            }
            left -= 1;
            let (key, record) = kv?;
            let event: Event = decode(&key, &record)?;
            if event.timestamp >= cutoffs.events_before {
                cursor.events_done = true;
                return Ok(left);
            }
            let deliveries = self.event_deliveries(&event.id)?;
            if deliveries.iter().any(|d| d.state == DeliveryState::Pending) {
                continue;
            }
            trees.write(|c| {
                c.remove(Slot::Events, key.to_vec());
                if let Some(source) = &event.source_id {
                    c.remove(Slot::SourceIds, key2(event.tenant.as_str(), source));
                }
                for d in &deliveries {
                    c.remove(Slot::Deliveries, d.id.as_str().as_bytes().to_vec());
                    c.remove(Slot::EventDeliveries, event_delivery_key(&event.id, &d.id));
                }
                Ok(())
            })?;
            swept.events += 1;
            swept.deliveries += deliveries.len() as u64;
        }
        match next {
            Some(key) => cursor.events = Some(key),
            None => cursor.events_done = true,
        }
        Ok(left)
    }

    /// Deletes attempts older than the cutoff, oldest first, within `left`;
    /// `true` once none is left to delete.
    fn sweep_attempts(
        &self,
        cutoffs: &Cutoffs,
        left: &mut usize,
        swept: &mut Swept,
    ) -> Result<bool> {
        let trees = &self.inner.trees;
        let mut old = Vec::new();
        let mut done = true;
        for kv in trees.attempts.iter() {
            if *left == 0 {
                done = false;
                break;
            }
            *left -= 1;
            let (key, value) = kv?;
            let a: Attempt = decode(&key, &value)?;
            if a.created_at >= cutoffs.attempts_before {
                break;
            }
            old.push(a);
        }
        if !old.is_empty() {
            trees.write(|c| {
                for a in &old {
                    c.remove(Slot::Attempts, a.id.as_str().as_bytes().to_vec());
                    c.remove(
                        Slot::SubAttempts,
                        key3(a.tenant.as_str(), a.subscription_id.as_str(), a.id.as_str()),
                    );
                }
                Ok(())
            })?;
            swept.attempts += old.len() as u64;
        }
        Ok(done)
    }

    /// Deletes the component bytes no plugin record names. Decided within
    /// the change, which upload writes also take turns for, so a blob
    /// uploaded meanwhile is never taken for unreferenced.
    fn sweep_plugin_blobs(&self) -> Result<u64> {
        let trees = &self.inner.trees;
        trees.write(|c| {
            let named: HashSet<String> = trees
                .plugins
                .iter()
                .map(decode_entry::<PluginRecord>)
                .map(|r| r.map(|r| r.sha256))
                .collect::<Result<_>>()?;
            let mut removed = 0;
            for kv in trees.plugin_blobs.iter() {
                let (sha, _) = kv?;
                if !named.contains(std::str::from_utf8(&sha).unwrap_or_default()) {
                    c.remove(Slot::PluginBlobs, sha.to_vec());
                    removed += 1;
                }
            }
            Ok(removed)
        })
    }
}
