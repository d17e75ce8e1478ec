//! Subscriptions: their rows, the change log every node follows to keep
//! its in-memory copy current, and what changes do to pending deliveries.
//!
//! Every change bumps the one-row `subscriptions_version` in its own
//! transaction (so changes commit in version order) and logs
//! `(version, tenant, id)` in `subscription_changes`. A node compares the
//! version with the one its copy holds before matching an event and before
//! claiming work, and reads only the changes past it; a full reload when
//! the log no longer reaches back that far.

use deadpool_postgres::Transaction;

use super::{PgStore, WORK_CHANNEL, decode, encode};
use crate::ids::{SubscriptionId, Tenant};
use crate::model::{Delivery, DeliveryState, Subscription};
use crate::store::Result;

/// Deliveries cancelled per transaction when a subscription's backlog is.
const CANCEL_CHUNK: i64 = 1000;

/// Changes kept in the log past the newest, for nodes that are behind.
pub(super) const CHANGES_KEPT: i64 = 10_000;

impl PgStore {
    /// Writes the row and logs the change; returns the new version.
    pub(super) async fn write_subscription(
        tx: &Transaction<'_>,
        sub: &Subscription,
    ) -> Result<i64> {
        let statement = tx
            .prepare_cached(
                "INSERT INTO subscriptions (tenant, id, record) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant, id) DO UPDATE SET record = excluded.record",
            )
            .await?;
        tx.execute(
            &statement,
            &[&sub.tenant.as_str(), &sub.id.as_str(), &encode(sub)],
        )
        .await?;
        Self::log_change(tx, &sub.tenant, &sub.id).await
    }

    async fn log_change(tx: &Transaction<'_>, tenant: &Tenant, id: &SubscriptionId) -> Result<i64> {
        let version: i64 = tx
            .query_one(
                "UPDATE subscriptions_version SET version = version + 1 RETURNING version",
                &[],
            )
            .await?
            .get(0);
        tx.execute(
            "INSERT INTO subscription_changes (version, tenant, id) VALUES ($1, $2, $3)",
            &[&version, &tenant.as_str(), &id.as_str()],
        )
        .await?;
        Ok(version)
    }

    /// Puts a change this node committed at `version` into its copy; the
    /// copy's version moves with it only when no other change came between.
    pub(super) fn applied_locally(&self, version: i64, sub: &Subscription) {
        let mut known = self.inner.index_version.lock();
        self.inner.index.write().put(sub.clone());
        if *known == version - 1 {
            *known = version;
        }
    }

    fn removed_locally(&self, version: i64, tenant: &Tenant, id: &SubscriptionId) {
        let mut known = self.inner.index_version.lock();
        self.inner.index.write().remove(tenant, id);
        if *known == version - 1 {
            *known = version;
        }
    }

    /// Brings the in-memory copy up to the database's version.
    pub(super) async fn fresh_index(&self) -> Result<()> {
        let client = self.client().await?;
        let version = client
            .prepare_cached("SELECT version FROM subscriptions_version")
            .await?;
        let current: i64 = client.query_one(&version, &[]).await?.get(0);
        if current <= *self.inner.index_version.lock() {
            return Ok(());
        }
        let _one = self.inner.reloading.lock().await;
        let known = *self.inner.index_version.lock();
        if current <= known {
            return Ok(());
        }
        // Read the version first: changes committed after it are seen
        // again by the next check.
        let current: i64 = client.query_one(&version, &[]).await?.get(0);
        let changes = client
            .query(
                "SELECT c.version, c.tenant, c.id, s.record FROM subscription_changes c
                 LEFT JOIN subscriptions s ON s.tenant = c.tenant AND s.id = c.id
                 WHERE c.version > $1 AND c.version <= $2 ORDER BY c.version",
                &[&known, &current],
            )
            .await?;
        let complete = known >= 0
            && changes.first().map(|r| r.get::<_, i64>(0)) == Some(known + 1)
            && changes.len() as i64 == current - known;
        if complete {
            let mut index = self.inner.index.write();
            for row in &changes {
                let (tenant, id): (&str, &str) = (row.get(1), row.get(2));
                match row.get::<_, Option<&[u8]>>(3) {
                    Some(record) => index.put(decode(id, record)?),
                    None => {
                        if let (Ok(t), Ok(i)) = (tenant.parse(), id.parse()) {
                            index.remove(&t, &i);
                        }
                    }
                }
            }
        } else {
            let all = self.list_subscriptions(None).await?;
            self.inner.index.write().rebuild(all);
        }
        let mut known = self.inner.index_version.lock();
        *known = (*known).max(current);
        Ok(())
    }

    /// Creates or replaces the subscription; one that stops being ordered
    /// releases what waits behind its head.
    pub async fn put_subscription(&self, sub: &Subscription) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let version = Self::write_subscription(&tx, sub).await?;
        if !sub.ordered {
            let released = tx
                .execute(
                    "UPDATE deliveries SET ordered = false
                     WHERE tenant = $1 AND subscription_id = $2 AND pending AND ordered",
                    &[&sub.tenant.as_str(), &sub.id.as_str()],
                )
                .await?;
            if released > 0 {
                tx.execute("SELECT pg_notify($1, '')", &[&WORK_CHANNEL])
                    .await?;
            }
        }
        tx.commit().await?;
        self.applied_locally(version, sub);
        Ok(())
    }

    pub(crate) async fn get_subscription(
        &self,
        tenant: &Tenant,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT record FROM subscriptions WHERE tenant = $1 AND id = $2",
                &[&tenant.as_str(), &id.as_str()],
            )
            .await?;
        row.map(|r| decode(id.as_str(), r.get(0))).transpose()
    }

    /// The tenant's subscriptions, or everyone's.
    pub(crate) async fn list_subscriptions(
        &self,
        tenant: Option<&Tenant>,
    ) -> Result<Vec<Subscription>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, record FROM subscriptions
                 WHERE $1::text IS NULL OR tenant = $1 ORDER BY tenant, id",
                &[&tenant.map(Tenant::as_str)],
            )
            .await?;
        rows.iter().map(|r| decode(r.get(0), r.get(1))).collect()
    }

    /// Removes the subscription and cancels its pending deliveries.
    pub async fn delete_subscription(&self, tenant: &Tenant, id: &SubscriptionId) -> Result<bool> {
        self.cancel_pending(tenant, id).await?;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let deleted = tx
            .execute(
                "DELETE FROM subscriptions WHERE tenant = $1 AND id = $2",
                &[&tenant.as_str(), &id.as_str()],
            )
            .await?;
        let version = Self::log_change(&tx, tenant, id).await?;
        tx.commit().await?;
        self.removed_locally(version, tenant, id);
        Ok(deleted == 1)
    }

    /// Marks every pending delivery of the subscription `cancelled`, a
    /// chunk per transaction.
    pub async fn cancel_pending(&self, tenant: &Tenant, id: &SubscriptionId) -> Result<usize> {
        let mut client = self.client().await?;
        let mut cancelled = 0;
        loop {
            let tx = client.transaction().await?;
            let rows = tx
                .query(
                    "SELECT id, record FROM deliveries
                     WHERE tenant = $1 AND subscription_id = $2 AND pending
                     LIMIT $3 FOR UPDATE",
                    &[&tenant.as_str(), &id.as_str(), &CANCEL_CHUNK],
                )
                .await?;
            if rows.is_empty() {
                return Ok(cancelled);
            }
            let mut ids = Vec::with_capacity(rows.len());
            let mut records = Vec::with_capacity(rows.len());
            for row in &rows {
                let mut d: Delivery = decode(row.get(0), row.get(1))?;
                d.state = DeliveryState::Cancelled;
                d.next_attempt_at = None;
                ids.push(row.get::<_, &str>(0));
                records.push(encode(&d));
            }
            tx.execute(
                "UPDATE deliveries d SET pending = false, due_ms = NULL,
                     locked_until_ms = NULL, locked_by = NULL, record = u.record
                 FROM unnest($1::text[], $2::bytea[]) AS u(id, record) WHERE d.id = u.id",
                &[&ids, &records],
            )
            .await?;
            tx.commit().await?;
            cancelled += rows.len();
        }
    }
}
