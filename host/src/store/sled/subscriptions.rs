//! Subscriptions: their records and index, and what changes to them do to
//! their pending deliveries (cancelling, releasing the ones an ordered
//! subscription held back).

use super::SledStore;
use super::journal::{Change, Slot};
use super::keys::{key2, key3, last_part, prefix2, queue_key, queue_value};
use super::records::{current_delivery, decode_entry, encode, read, write_subscription};
use crate::ids::{SubscriptionId, Tenant};
use crate::model::{Delivery, DeliveryState, Subscription};
use crate::store::{Queued, Result};

/// Deliveries changed per change when cancelling or releasing a
/// subscription's backlog: one change each would write a journal record
/// per delivery, one for all would hold a huge write set in memory.
pub(super) const CHANGE_CHUNK: usize = 256;

impl SledStore {
    /// Creates or replaces the subscription; one that stops being ordered
    /// releases whatever still waits behind its head.
    pub fn put_subscription(&self, sub: &Subscription) -> Result<()> {
        let _ordered = self.ordered_lock();
        let was_ordered = self
            .index_read()
            .get(&sub.tenant, &sub.id)
            .is_some_and(|before| before.ordered);
        self.inner.trees.write(|c| {
            write_subscription(c, sub);
            Ok(())
        })?;
        self.index_write().put(sub.clone());
        if was_ordered && !sub.ordered {
            self.release_waiting(&sub.tenant, &sub.id)?;
        }
        Ok(())
    }

    pub(crate) fn get_subscription(
        &self,
        tenant: &Tenant,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>> {
        let key = key2(tenant.as_str(), id.as_str());
        read(&self.inner.trees.subscriptions, &key)
    }

    pub(crate) fn list_subscriptions(&self, tenant: &Tenant) -> Result<Vec<Subscription>> {
        let prefix = key2(tenant.as_str(), "");
        self.inner
            .trees
            .subscriptions
            .scan_prefix(prefix)
            .map(decode_entry)
            .collect()
    }

    pub(crate) fn all_subscriptions(&self) -> Result<Vec<Subscription>> {
        self.inner
            .trees
            .subscriptions
            .iter()
            .map(decode_entry)
            .collect()
    }

    /// Removes the subscription and cancels its pending deliveries.
    pub fn delete_subscription(&self, tenant: &Tenant, id: &SubscriptionId) -> Result<bool> {
        self.cancel_pending(tenant, id)?;
        let key = key2(tenant.as_str(), id.as_str());
        let existed = self.inner.trees.write(|c| {
            let existed = c.get(Slot::Subscriptions, &key)?.is_some();
            c.remove(Slot::Subscriptions, key);
            Ok(existed)
        })?;
        self.index_write().remove(tenant, id);
        Ok(existed)
    }

    /// Marks every pending delivery of the subscription `cancelled`: those
    /// waiting in `sub_pending` (ordered) and those in `queue` (the heads,
    /// and every pending delivery of an unordered subscription).
    pub fn cancel_pending(&self, tenant: &Tenant, id: &SubscriptionId) -> Result<usize> {
        let _ordered = self.ordered_lock();
        let sub_key = key2(tenant.as_str(), id.as_str());
        let mut ids = self.waiting(tenant, id)?;
        ids.extend(self.inner.trees.schedule.lock().of_subscription(&sub_key));
        ids.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        ids.dedup_by(|a, b| a.id == b.id);
        let cancelled = self.take_pending(tenant, id, &ids, |d, c| {
            if let Some(due) = d.next_attempt_at.take() {
                c.remove(Slot::Queue, queue_key(due, &d.id));
            }
            d.state = DeliveryState::Cancelled;
            c.insert(Slot::Deliveries, d.id.as_str(), encode(d));
        })?;
        Ok(cancelled.len())
    }

    /// The ids in the subscription's `sub_pending` range (call with the
    /// ordered lock held).
    fn waiting(&self, tenant: &Tenant, id: &SubscriptionId) -> Result<Vec<Queued>> {
        let prefix = prefix2(tenant.as_str(), id.as_str());
        let mut ids = Vec::new();
        for kv in self.inner.trees.sub_pending.scan_prefix(&prefix) {
            let (k, _) = kv?;
            if let Ok(dlv) = last_part(&k).parse() {
                // Ordered deliveries always have rows.
                ids.push(Queued {
                    id: dlv,
                    event: None,
                });
            }
        }
        Ok(ids)
    }

    /// Queues every delivery still waiting its turn in an ordered
    /// subscription that is not ordered any more (the head is queued
    /// already: it moves to the same place).
    fn release_waiting(&self, tenant: &Tenant, id: &SubscriptionId) -> Result<()> {
        let ids = self.waiting(tenant, id)?;
        self.take_pending(tenant, id, &ids, |d, c| {
            if let Some(due) = d.next_attempt_at {
                c.insert(Slot::Queue, queue_key(due, &d.id), queue_value(d));
            }
        })?;
        Ok(())
    }

    /// Takes the subscription's deliveries `ids` out of `sub_pending` and
    /// applies `change` to those still pending, [`CHANGE_CHUNK`] per
    /// change; returns them as changed.
    fn take_pending(
        &self,
        tenant: &Tenant,
        id: &SubscriptionId,
        ids: &[Queued],
        change: impl Fn(&mut Delivery, &mut Change<'_>),
    ) -> Result<Vec<Delivery>> {
        let mut changed = Vec::new();
        for chunk in ids.chunks(CHANGE_CHUNK) {
            changed.extend(self.inner.trees.write(|c| {
                let mut changed = Vec::with_capacity(chunk.len());
                for q in chunk {
                    let dlv = &q.id;
                    c.remove(
                        Slot::SubPending,
                        key3(tenant.as_str(), id.as_str(), dlv.as_str()),
                    );
                    let Some(mut d) = current_delivery(c, q)? else {
                        continue;
                    };
                    if d.state == DeliveryState::Pending {
                        change(&mut d, c);
                        changed.push(d);
                    }
                }
                Ok(changed)
            })?);
        }
        Ok(changed)
    }
}
