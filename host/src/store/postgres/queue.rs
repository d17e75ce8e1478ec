//! The due-time queue in SQL: claims in batches with `FOR UPDATE SKIP
//! LOCKED`, leases renewed while attempts run and retaken by another node
//! once they run out, and the upkeep task (lease renewal, queue depth,
//! reachability).
//!
//! A row is claimable when it is pending, due, not under a live lease, and,
//! for an ordered subscription, its head: the pending ordered row with the
//! lowest `seq`. The head stays pending (and so the head) while its attempt
//! runs under a lease, so nothing behind it is claimable anywhere until its
//! attempt is recorded or its lease runs out.

use std::collections::HashMap;
use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Inner, PgStore, ms, subscription_key};
use crate::clock::Timestamp;
use crate::ids::DeliveryId;
use crate::store::{Claimed, Queued, Release, Result};

/// Claims in one statement, locking only the rows it takes. `candidates`
/// reads, without locks, the earliest claimable rows (`$3` of them, leaving
/// out subscriptions at their share, `$4`); `chosen` keeps of each
/// subscription no more than its share left (`$7` less what this node holds,
/// `$5`/`$6`) and locks the earliest `$2` of those, skipping rows another
/// claim holds; a row changed since the read is checked again as it is
/// locked (still pending, due and unleased). The lease is set on the rows
/// taken, in the same statement.
const CLAIM: &str = "WITH candidates AS MATERIALIZED (
    SELECT d.id, d.tenant, d.subscription_id, d.due_ms, d.seq FROM deliveries d
    WHERE d.pending AND d.due_ms <= $1
      AND (d.locked_until_ms IS NULL OR d.locked_until_ms <= $1)
      AND (NOT d.ordered OR d.seq = (
          SELECT min(h.seq) FROM deliveries h
          WHERE h.pending AND h.ordered
            AND h.tenant = d.tenant AND h.subscription_id = d.subscription_id))
      AND NOT (d.tenant || '/' || d.subscription_id = ANY($4::text[]))
    ORDER BY d.due_ms, d.seq
    LIMIT $3
), ranked AS (
    SELECT c.id, c.due_ms, c.seq,
        row_number() OVER (
            PARTITION BY c.tenant, c.subscription_id ORDER BY c.due_ms, c.seq) AS n,
        $7 - coalesce(h.held, 0) AS share
    FROM candidates c
    LEFT JOIN unnest($5::text[], $6::int8[]) AS h(key, held)
        ON h.key = c.tenant || '/' || c.subscription_id
), chosen AS (
    SELECT d.id FROM deliveries d JOIN ranked r ON r.id = d.id
    WHERE r.n <= r.share
      AND d.pending AND d.due_ms <= $1
      AND (d.locked_until_ms IS NULL OR d.locked_until_ms <= $1)
    ORDER BY r.due_ms, r.seq
    LIMIT $2
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE deliveries u SET locked_until_ms = $8, locked_by = $9
FROM chosen WHERE u.id = chosen.id
RETURNING u.id, u.event_id, u.tenant, u.subscription_id, u.due_ms, u.seq";

/// When the next row becomes claimable: a later due time, or a lease
/// running out.
const NEXT_DUE: &str = "SELECT least(
    (SELECT min(due_ms) FROM deliveries WHERE pending AND due_ms > $1),
    (SELECT min(locked_until_ms) FROM deliveries
     WHERE pending AND locked_until_ms IS NOT NULL AND locked_until_ms > $1))";

/// The queue gauge counts pending rows up to this many, along the pending
/// index; past it, a full count would scan the backlog every second.
const QUEUE_COUNTED: i64 = 1_000;

/// The pending rows counted up to `$1`, and the planner's estimate of them
/// (the pending index's size at the last vacuum or analyze, -1 if none yet).
const QUEUE_DEPTH: &str = "SELECT
    (SELECT count(*) FROM (
        SELECT 1 FROM deliveries WHERE pending ORDER BY due_ms LIMIT $1) p),
    (SELECT reltuples::int8 FROM pg_class WHERE oid = 'deliveries_due'::regclass)";

/// What this node has claimed and not released.
#[derive(Default)]
pub(super) struct Claims {
    /// Each claimed delivery's subscription key.
    claimed: HashMap<DeliveryId, String>,
    per_subscription: HashMap<String, usize>,
}

impl Claims {
    fn add(&mut self, id: DeliveryId, sub: String) {
        *self.per_subscription.entry(sub.clone()).or_default() += 1;
        self.claimed.insert(id, sub);
    }

    fn remove(&mut self, id: &DeliveryId) {
        if let Some(sub) = self.claimed.remove(id)
            && let Some(n) = self.per_subscription.get_mut(&sub)
        {
            *n -= 1;
            if *n == 0 {
                self.per_subscription.remove(&sub);
            }
        }
    }
}

impl PgStore {
    /// Claims up to `limit` due deliveries for this node, under a lease.
    pub async fn claim_due(
        &self,
        now: Timestamp,
        limit: usize,
        per_subscription: usize,
    ) -> Result<Claimed> {
        // Attempts run with the subscriptions from memory: catch up first.
        self.fresh_index().await?;
        let (full, held, counts) = {
            let claims = self.inner.claims.lock();
            let full: Vec<String> = claims
                .per_subscription
                .iter()
                .filter(|(_, n)| **n >= per_subscription)
                .map(|(k, _)| k.clone())
                .collect();
            let (held, counts): (Vec<String>, Vec<i64>) = claims
                .per_subscription
                .iter()
                .map(|(k, n)| (k.clone(), i64::try_from(*n).unwrap_or(i64::MAX)))
                .unzip();
            (full, held, counts)
        };
        let client = self.client().await?;
        let statement = client.prepare_cached(CLAIM).await?;
        let wanted = i64::try_from(limit).unwrap_or(i64::MAX);
        let candidates = wanted.saturating_mul(2);
        let share = i64::try_from(per_subscription).unwrap_or(i64::MAX);
        let until = ms(now.saturating_add(self.inner.settings.lease));
        let mut rows = client
            .query(
                &statement,
                &[
                    &ms(now),
                    &wanted,
                    &candidates,
                    &full,
                    &held,
                    &counts,
                    &share,
                    &until,
                    &self.inner.node,
                ],
            )
            .await?;
        // RETURNING keeps no order: earliest first again.
        rows.sort_by_key(|row| (row.get::<_, i64>(4), row.get::<_, i64>(5)));
        let mut ready = Vec::with_capacity(rows.len());
        {
            let mut claims = self.inner.claims.lock();
            for row in &rows {
                let (Ok(id), Ok(event)) = (
                    row.get::<_, &str>(0).parse::<DeliveryId>(),
                    row.get::<_, &str>(1).parse(),
                ) else {
                    // Unreadable ids: left to their lease, like a node that died.
                    continue;
                };
                claims.add(id.clone(), subscription_key(row.get(2), row.get(3)));
                ready.push(Queued {
                    id,
                    event: Some(event),
                });
            }
        }
        let next_due = if ready.len() < limit {
            let statement = client.prepare_cached(NEXT_DUE).await?;
            let next: Option<i64> = client.query_one(&statement, &[&ms(now)]).await?.get(0);
            next.map(|t| Timestamp(u64::try_from(t).unwrap_or_default()))
        } else {
            None
        };
        Ok(Claimed { ready, next_due })
    }

    /// Ends a claim. An unrecorded attempt's lease is given up at once so
    /// the delivery runs again without waiting for it to run out.
    pub fn release(&self, id: &DeliveryId, how: Release) {
        self.inner.claims.lock().remove(id);
        if how == Release::Unrecorded {
            let store = self.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let unlocked = async {
                    let client = store.client().await?;
                    client
                        .execute(
                            "UPDATE deliveries SET locked_until_ms = NULL, locked_by = NULL
                             WHERE id = $1 AND locked_by = $2",
                            &[&id.as_str(), &store.inner.node],
                        )
                        .await?;
                    Ok::<(), crate::store::StoreError>(())
                };
                if let Err(e) = unlocked.await {
                    tracing::warn!(delivery = %id, error = %e, "giving up a lease failed; it runs out instead");
                }
                store.inner.wake.wake();
            });
        }
    }
}

/// How often the upkeep task runs: often enough to renew leases well before
/// they run out, at least once a second for the queue gauge.
fn upkeep_every(lease: Duration) -> Duration {
    (lease / 3).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// Renews this node's leases, gauges the queue and notes whether the
/// database answers, until the store is dropped.
pub(super) async fn upkeep(inner: Weak<Inner>) {
    let Some(lease) = inner.upgrade().map(|i| i.settings.lease) else {
        return;
    };
    let mut tick = tokio::time::interval(upkeep_every(lease));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let store = PgStore { inner };
        let round = upkeep_round(&store, lease).await;
        if let Err(e) = &round {
            tracing::warn!(error = %e, "database upkeep failed");
        }
        store
            .inner
            .reachable
            .store(round.is_ok(), Ordering::Relaxed);
    }
}

async fn upkeep_round(store: &PgStore, lease: Duration) -> Result<()> {
    let client = store.client().await?;
    let held: Vec<String> = store
        .inner
        .claims
        .lock()
        .claimed
        .keys()
        .map(|id| id.as_str().to_owned())
        .collect();
    if !held.is_empty() {
        // The wall clock: attempts run on it, whatever clock claimed them.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let now = Timestamp(u64::try_from(now.as_millis()).unwrap_or(u64::MAX));
        client
            .execute(
                "UPDATE deliveries SET locked_until_ms = GREATEST(locked_until_ms, $1)
                 WHERE id = ANY($3) AND locked_by = $2 AND pending",
                &[&ms(now.saturating_add(lease)), &store.inner.node, &held],
            )
            .await?;
    }
    let depth = client.prepare_cached(QUEUE_DEPTH).await?;
    let row = client.query_one(&depth, &[&QUEUE_COUNTED]).await?;
    let (counted, estimate): (i64, i64) = (row.get(0), row.get(1));
    let pending = if counted < QUEUE_COUNTED {
        counted
    } else {
        counted.max(estimate)
    };
    store.inner.queue_len.store(
        usize::try_from(pending).unwrap_or_default(),
        Ordering::Relaxed,
    );
    Ok(())
}
