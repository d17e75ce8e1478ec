//! Attempts: recording one with its consequences (batched with other
//! writes, or at once for ordered subscriptions, whose next head it picks),
//! and reading them back by subscription, newest first.

use super::SledStore;
use super::journal::{Change, Slot};
use super::keys::{key3, last_part, pending_key, prefix2, queue_key, queue_value};
use super::records::{decode, encode, read, write_delivery, write_subscription};
use crate::clock::Timestamp;
use crate::ids::{AttemptId, DeliveryId, SubscriptionId, Tenant};
use crate::model::{Attempt, Delivery, DeliveryState, Subscription};
use crate::store::{AttemptResult, AttemptSlice, Result};

impl SledStore {
    /// Records an attempt and its consequences, durably. Attempts of
    /// unordered deliveries are batched with whatever else is staged (one
    /// change and one flush for all); ordered ones go through
    /// [`SledStore::finish_attempt`], which picks the next head.
    pub async fn record_attempt(
        &self,
        result: &AttemptResult,
        ordered: bool,
        now: Timestamp,
    ) -> Result<()> {
        if ordered {
            self.finish_attempt(result, ordered, now)?;
            return self.durable().await;
        }
        let staged = StagedFinish::new(result);
        self.inner.commit.commit.lock_staged().finishes.push(staged);
        self.durable().await
    }

    /// Records an attempt and its consequences in one change. When the
    /// delivery ends and its subscription is ordered, the next pending delivery
    /// of that subscription is queued at `now`. A delivery that was cancelled
    /// while the attempt ran keeps its state; the attempt is still recorded.
    pub fn finish_attempt(
        &self,
        result: &AttemptResult,
        ordered: bool,
        now: Timestamp,
    ) -> Result<()> {
        let d = &result.delivery;
        let _ordered = ordered.then(|| self.ordered_lock());
        let pending = pending_key(d);
        // The next head, found before the change (the lock keeps it valid).
        let next_head = if ordered && d.state.is_final() {
            let prefix = prefix2(d.tenant.as_str(), d.subscription_id.as_str());
            let mut next = None;
            for kv in self.inner.trees.sub_pending.scan_prefix(&prefix) {
                let (k, _) = kv?;
                if k != pending {
                    next = last_part(&k).parse::<DeliveryId>().ok();
                    break;
                }
            }
            next
        } else {
            None
        };
        // Held across the change, as in a batch (`commit_batch`).
        let mut index = result.subscription.is_some().then(|| self.index_write());
        let staged = StagedFinish::new(result);
        let wrote_subscription = self.inner.trees.write(|c| {
            if !finish_in(c, &staged)? {
                return Ok(false);
            }
            if ordered && d.state.is_final() {
                c.remove(Slot::SubPending, pending.as_slice());
                if let Some(next) = &next_head
                    && let Some(raw) = c.get(Slot::Deliveries, next.as_str().as_bytes())?
                {
                    let mut n: Delivery = decode(next.as_str().as_bytes(), &raw)?;
                    n.next_attempt_at = Some(now.max(n.next_attempt_at.unwrap_or(now)));
                    write_delivery(c, &n, true);
                }
            }
            Ok(result.subscription.is_some())
        })?;
        if let (Some(index), Some(sub), true) =
            (index.as_mut(), &result.subscription, wrote_subscription)
        {
            index.put(sub.clone());
        }
        drop(index);
        Ok(())
    }

    pub(crate) fn get_attempt(&self, id: &AttemptId) -> Result<Option<Attempt>> {
        let key = id.as_str().as_bytes();
        read(&self.inner.trees.attempts, key)
    }

    /// The subscription's attempts, newest first, strictly older than `before`.
    pub fn list_attempts(
        &self,
        tenant: &Tenant,
        sub: &SubscriptionId,
        limit: usize,
        before: Option<&AttemptId>,
    ) -> Result<AttemptSlice> {
        let prefix = prefix2(tenant.as_str(), sub.as_str());
        let end = match before {
            Some(b) => key3(tenant.as_str(), sub.as_str(), b.as_str()),
            None => {
                let mut e = prefix.clone();
                e.push(0xff);
                e
            }
        };
        let mut attempts = Vec::with_capacity(limit.min(256));
        let mut next = None;
        for kv in self
            .inner
            .trees
            .sub_attempts
            .range(prefix.as_slice()..end.as_slice())
            .rev()
        {
            let (k, _) = kv?;
            let Ok(id) = last_part(&k).parse::<AttemptId>() else {
                continue;
            };
            if attempts.len() == limit {
                next = attempts.last().map(|a: &Attempt| a.id.clone());
                break;
            }
            if let Some(a) = self.get_attempt(&id)? {
                attempts.push(a);
            }
        }
        Ok(AttemptSlice { attempts, next })
    }
}

/// A finished attempt, encoded for [`finish_in`]; an unordered delivery's
/// is staged for the next batch.
pub(super) struct StagedFinish {
    attempt_id: Vec<u8>,
    attempt: Vec<u8>,
    sub_attempt_key: Vec<u8>,
    delivery_id: Vec<u8>,
    delivery: Vec<u8>,
    /// The queue entry of the delivery's next attempt, if it stays pending.
    pub(super) requeue: Option<(Vec<u8>, Vec<u8>)>,
    pub(super) subscription: Option<Subscription>,
    /// [`AttemptResult::found`].
    found: Delivery,
}

impl StagedFinish {
    pub(super) fn new(result: &AttemptResult) -> Self {
        let (d, a) = (&result.delivery, &result.attempt);
        StagedFinish {
            attempt_id: a.id.as_str().into(),
            attempt: encode(a),
            sub_attempt_key: key3(a.tenant.as_str(), a.subscription_id.as_str(), a.id.as_str()),
            delivery_id: d.id.as_str().into(),
            delivery: encode(d),
            requeue: d
                .next_attempt_at
                .map(|due| (queue_key(due, &d.id), queue_value(d))),
            subscription: result.subscription.clone(),
            found: result.found.clone(),
        }
    }
}

/// One finished attempt within a change: the attempt is recorded, and the
/// delivery (and the subscription's change, if any) updated unless it is no
/// longer pending, e.g. cancelled while the attempt ran. `true` when it was
/// still pending. A `Corrupt` error means the delivery's row is unreadable,
/// found after the attempt's own writes.
pub(super) fn finish_in(c: &mut Change<'_>, f: &StagedFinish) -> Result<bool> {
    c.insert(
        Slot::Attempts,
        f.attempt_id.as_slice(),
        f.attempt.as_slice(),
    );
    c.insert(Slot::SubAttempts, f.sub_attempt_key.as_slice(), &[][..]);
    let before: Delivery = match c.get(Slot::Deliveries, &f.delivery_id)? {
        Some(raw) => decode(&f.delivery_id, &raw)?,
        None => f.found.clone(),
    };
    if let Some(due) = before.next_attempt_at {
        c.remove(Slot::Queue, queue_key(due, &before.id));
    }
    if before.state != DeliveryState::Pending {
        return Ok(false);
    }
    c.insert(
        Slot::Deliveries,
        f.delivery_id.as_slice(),
        f.delivery.as_slice(),
    );
    if let Some((key, value)) = &f.requeue {
        c.insert(Slot::Queue, key.as_slice(), value.as_slice());
    }
    if let Some(sub) = &f.subscription {
        write_subscription(c, sub);
    }
    Ok(true)
}
