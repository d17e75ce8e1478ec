//! Attempts: recording one with its consequences in one transaction (one
//! statement unless the subscription changes too), and reading them back by
//! subscription, newest first.

use deadpool_postgres::tokio_postgres::types::ToSql;

use super::{PgStore, decode, encode, ms};
use crate::ids::{AttemptId, SubscriptionId, Tenant};
use crate::model::{Attempt, DeliveryState};
use crate::store::{AttemptResult, AttemptSlice, Result};

/// The attempt and the delivery's new state in one statement (one round
/// trip); the delivery only if it is still pending.
const RECORD_ATTEMPT: &str = "WITH attempt AS (
        INSERT INTO attempts (id, tenant, subscription_id, created_ms, record)
        VALUES ($1, $2, $3, $4, $5))
    UPDATE deliveries SET record = $7, pending = $8, due_ms = $9,
        locked_until_ms = NULL, locked_by = NULL
    WHERE id = $6 AND pending";

impl PgStore {
    /// Records the attempt; the delivery (and the subscription's change)
    /// only if the delivery is still pending, e.g. not cancelled meanwhile.
    /// Ending the claim is part of it. An ordered subscription's next
    /// delivery becomes its head by this commit (see [`super::queue`]).
    pub async fn record_attempt(&self, result: &AttemptResult) -> Result<()> {
        let (a, d) = (&result.attempt, &result.delivery);
        let params: [&(dyn ToSql + Sync); 9] = [
            &a.id.as_str(),
            &a.tenant.as_str(),
            &a.subscription_id.as_str(),
            &ms(a.created_at),
            &encode(a),
            &d.id.as_str(),
            &encode(d),
            &(d.state == DeliveryState::Pending),
            &d.next_attempt_at.map(ms),
        ];
        let mut client = self.client().await?;
        let Some(sub) = &result.subscription else {
            // Nothing else to write: no transaction around the one statement.
            let record = client.prepare_cached(RECORD_ATTEMPT).await?;
            client.execute(&record, &params).await?;
            return Ok(());
        };
        let tx = client.transaction().await?;
        let record = tx.prepare_cached(RECORD_ATTEMPT).await?;
        let updated = tx.execute(&record, &params).await?;
        let version = if updated == 1 {
            Some(Self::write_subscription(&tx, sub).await?)
        } else {
            None
        };
        tx.commit().await?;
        if let Some(version) = version {
            self.applied_locally(version, sub);
        }
        Ok(())
    }

    pub(crate) async fn get_attempt(&self, id: &AttemptId) -> Result<Option<Attempt>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT record FROM attempts WHERE id = $1")
            .await?;
        let row = client.query_opt(&statement, &[&id.as_str()]).await?;
        row.map(|r| decode(id.as_str(), r.get(0))).transpose()
    }

    /// The subscription's attempts, newest first, strictly older than `before`.
    pub async fn list_attempts(
        &self,
        tenant: &Tenant,
        sub: &SubscriptionId,
        limit: usize,
        before: Option<&AttemptId>,
    ) -> Result<AttemptSlice> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT id, record FROM attempts
                 WHERE tenant = $1 AND subscription_id = $2 AND ($3::text IS NULL OR id < $3)
                 ORDER BY id DESC LIMIT $4",
            )
            .await?;
        let fetch = i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1;
        let rows = client
            .query(
                &statement,
                &[
                    &tenant.as_str(),
                    &sub.as_str(),
                    &before.map(AttemptId::as_str),
                    &fetch,
                ],
            )
            .await?;
        let mut attempts: Vec<Attempt> = rows
            .iter()
            .map(|r| decode(r.get(0), r.get(1)))
            .collect::<Result<_>>()?;
        let next = if attempts.len() > limit {
            attempts.truncate(limit);
            attempts.last().map(|a| a.id.clone())
        } else {
            None
        };
        Ok(AttemptSlice { attempts, next })
    }
}
