//! Attempts: recording one with its consequences in one transaction, and
//! reading them back by subscription, newest first.

use super::{PgStore, decode, encode, ms};
use crate::ids::{AttemptId, SubscriptionId, Tenant};
use crate::model::{Attempt, DeliveryState};
use crate::store::{AttemptResult, AttemptSlice, Result};

impl PgStore {
    /// Records the attempt; the delivery (and the subscription's change)
    /// only if the delivery is still pending, e.g. not cancelled meanwhile.
    /// Ending the claim is part of it. An ordered subscription's next
    /// delivery becomes its head by this commit (see [`super::queue`]).
    pub async fn record_attempt(&self, result: &AttemptResult) -> Result<()> {
        let (a, d) = (&result.attempt, &result.delivery);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO attempts (id, tenant, subscription_id, created_ms, record)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .await?;
        tx.execute(
            &insert,
            &[
                &a.id.as_str(),
                &a.tenant.as_str(),
                &a.subscription_id.as_str(),
                &ms(a.created_at),
                &encode(a),
            ],
        )
        .await?;
        let update = tx
            .prepare_cached(
                "UPDATE deliveries SET record = $2, pending = $3, due_ms = $4,
                     locked_until_ms = NULL, locked_by = NULL
                 WHERE id = $1 AND pending",
            )
            .await?;
        let updated = tx
            .execute(
                &update,
                &[
                    &d.id.as_str(),
                    &encode(d),
                    &(d.state == DeliveryState::Pending),
                    &d.next_attempt_at.map(ms),
                ],
            )
            .await?;
        let mut version = None;
        if updated == 1
            && let Some(sub) = &result.subscription
        {
            version = Some(Self::write_subscription(&tx, sub).await?);
        }
        tx.commit().await?;
        if let (Some(version), Some(sub)) = (version, &result.subscription) {
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
