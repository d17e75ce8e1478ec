//! Uploaded plugins (records and component bytes as `bytea`) and the
//! retention sweep: batched `DELETE`s of final events with their
//! deliveries, old attempts, unreferenced plugin bytes and old entries of
//! the subscription change log.

use super::subscriptions::CHANGES_KEPT;
use super::{PgStore, decode, encode, ms};
use crate::store::{Cutoffs, PluginRecord, Result, Swept};

impl PgStore {
    /// Stores an upload's record and its bytes in one transaction.
    pub async fn put_plugin(&self, record: &PluginRecord, wasm: &[u8]) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO plugin_blobs (sha256, wasm) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING",
            &[&record.sha256, &wasm],
        )
        .await?;
        tx.execute(
            "INSERT INTO plugins (name, sha256, record) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, record = excluded.record",
            &[&record.name.as_str(), &record.sha256, &encode(record)],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn list_plugins(&self) -> Result<Vec<PluginRecord>> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT name, record FROM plugins ORDER BY name", &[])
            .await?;
        rows.iter().map(|r| decode(r.get(0), r.get(1))).collect()
    }

    pub(crate) async fn plugin_blob(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT wasm FROM plugin_blobs WHERE sha256 = $1",
                &[&sha256],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Deletes up to `budget` final events (with their deliveries) and up to
    /// `budget` old attempts, oldest first; once neither has more, the
    /// unreferenced plugin bytes and old change-log entries.
    pub async fn sweep(&self, cutoffs: &Cutoffs, budget: usize) -> Result<Swept> {
        let budget = i64::try_from(budget).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let row = client
            .query_one(
                "WITH old AS (
                     SELECT e.id FROM events e
                     WHERE e.created_ms < $1 AND NOT EXISTS (
                         SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.pending)
                     ORDER BY e.created_ms LIMIT $2 FOR UPDATE SKIP LOCKED),
                 gone_deliveries AS (
                     DELETE FROM deliveries d USING old WHERE d.event_id = old.id RETURNING 1),
                 gone_events AS (
                     DELETE FROM events e USING old WHERE e.id = old.id RETURNING 1)
                 SELECT (SELECT count(*) FROM gone_events), (SELECT count(*) FROM gone_deliveries)",
                &[&ms(cutoffs.events_before), &budget],
            )
            .await?;
        let (events, deliveries): (i64, i64) = (row.get(0), row.get(1));
        let attempts = client
            .execute(
                "DELETE FROM attempts WHERE id IN (
                     SELECT id FROM attempts WHERE created_ms < $1
                     ORDER BY created_ms LIMIT $2 FOR UPDATE SKIP LOCKED)",
                &[&ms(cutoffs.attempts_before), &budget],
            )
            .await?;
        let mut swept = Swept {
            events: events as u64,
            deliveries: deliveries as u64,
            attempts,
            plugin_blobs: 0,
            done: events < budget && (attempts as i64) < budget,
        };
        if swept.done {
            swept.plugin_blobs = client
                .execute(
                    "DELETE FROM plugin_blobs b
                     WHERE NOT EXISTS (SELECT 1 FROM plugins p WHERE p.sha256 = b.sha256)",
                    &[],
                )
                .await?;
            client
                .execute(
                    "DELETE FROM subscription_changes
                     WHERE version < (SELECT version FROM subscriptions_version) - $1",
                    &[&CHANGES_KEPT],
                )
                .await?;
        }
        Ok(swept)
    }
}
