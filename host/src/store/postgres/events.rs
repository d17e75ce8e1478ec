//! Events and their deliveries: ingest (one transaction, idempotent by the
//! `(tenant, source_id)` unique index), reads, and resends.

use deadpool_postgres::Transaction;

use super::{PgStore, WORK_CHANNEL, decode, encode, ms, subscription_key};
use crate::ids::EventId;
use crate::model::{Delivery, DeliveryState, Event};
use crate::store::{Ingested, NewDelivery, Queued, Receipt, Result, StoreError};

const INSERT_DELIVERIES: &str = "INSERT INTO deliveries
        (id, event_id, tenant, subscription_id, pending, ordered, due_ms, record)
    SELECT d.id, d.event_id, $1, d.sub, d.pending, d.ordered, d.due, d.record
    FROM unnest($2::text[], $3::text[], $4::text[], $5::bool[], $6::bool[], $7::int8[], $8::bytea[])
        WITH ORDINALITY AS d(id, event_id, sub, pending, ordered, due, record, n)
    ORDER BY d.n";

/// Takes each ordered subscription's advisory lock for the transaction, in
/// one order everywhere: deliveries to it are then numbered (`seq`) in the
/// order they commit, which is the order its head follows.
async fn lock_ordered<'a>(
    tx: &Transaction<'_>,
    deliveries: impl Iterator<Item = &'a Delivery>,
) -> Result<()> {
    let mut keys: Vec<String> = deliveries
        .map(|d| subscription_key(d.tenant.as_str(), d.subscription_id.as_str()))
        .collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&key],
        )
        .await?;
    }
    Ok(())
}

/// Inserts deliveries of one tenant, in the order given.
async fn insert_deliveries(tx: &Transaction<'_>, deliveries: &[NewDelivery]) -> Result<()> {
    let Some(first) = deliveries.first() else {
        return Ok(());
    };
    let mut cols = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for NewDelivery {
        delivery: d,
        ordered,
    } in deliveries
    {
        cols.0.push(d.id.as_str());
        cols.1.push(d.event_id.as_str());
        cols.2.push(d.subscription_id.as_str());
        cols.3.push(d.state == DeliveryState::Pending);
        cols.4.push(*ordered);
        cols.5.push(d.next_attempt_at.map(ms));
        cols.6.push(encode(d));
    }
    let statement = tx.prepare_cached(INSERT_DELIVERIES).await?;
    tx.execute(
        &statement,
        &[
            &first.delivery.tenant.as_str(),
            &cols.0,
            &cols.1,
            &cols.2,
            &cols.3,
            &cols.4,
            &cols.5,
            &cols.6,
        ],
    )
    .await?;
    Ok(())
}

async fn notify_work(tx: &Transaction<'_>) -> Result<()> {
    tx.execute("SELECT pg_notify($1, '')", &[&WORK_CHANNEL])
        .await?;
    Ok(())
}

impl PgStore {
    /// Stores the event and its deliveries in one transaction, unless the
    /// tenant already has an event with the same source id. Durable and
    /// visible once it returns.
    pub async fn ingest(&self, event: &Event, deliveries: &[NewDelivery]) -> Result<Ingested> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        lock_ordered(
            &tx,
            deliveries.iter().filter(|n| n.ordered).map(|n| &n.delivery),
        )
        .await?;
        let receipt = Receipt {
            id: event.id.clone(),
            deliveries: deliveries.len(),
        };
        let count = i32::try_from(deliveries.len()).unwrap_or(i32::MAX);
        let statement = tx
            .prepare_cached(
                "INSERT INTO events (id, tenant, source_id, created_ms, deliveries, record)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant, source_id) DO NOTHING",
            )
            .await?;
        let inserted = tx
            .execute(
                &statement,
                &[
                    &event.id.as_str(),
                    &event.tenant.as_str(),
                    &event.source_id,
                    &ms(event.timestamp),
                    &count,
                    &encode(event),
                ],
            )
            .await?;
        if inserted == 0 {
            let first = tx
                .query_one(
                    "SELECT id, deliveries FROM events WHERE tenant = $1 AND source_id = $2",
                    &[&event.tenant.as_str(), &event.source_id],
                )
                .await?;
            let id: &str = first.get(0);
            let deliveries: i32 = first.get(1);
            return Ok(Ingested::Duplicate(Receipt {
                id: id.parse().map_err(|e| StoreError::Backend(Box::new(e)))?,
                deliveries: usize::try_from(deliveries).unwrap_or_default(),
            }));
        }
        insert_deliveries(&tx, deliveries).await?;
        if !deliveries.is_empty() {
            notify_work(&tx).await?;
        }
        tx.commit().await?;
        Ok(Ingested::New(receipt))
    }

    pub(crate) async fn get_event(&self, id: &EventId) -> Result<Option<Event>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT record FROM events WHERE id = $1")
            .await?;
        let row = client.query_opt(&statement, &[&id.as_str()]).await?;
        row.map(|r| decode(id.as_str(), r.get(0))).transpose()
    }

    /// The event's deliveries as they stand, in the order they were made.
    pub async fn event_deliveries(&self, id: &EventId) -> Result<Vec<Delivery>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT id, record FROM deliveries WHERE event_id = $1 ORDER BY seq")
            .await?;
        let rows = client.query(&statement, &[&id.as_str()]).await?;
        rows.iter().map(|r| decode(r.get(0), r.get(1))).collect()
    }

    /// Adds one more delivery of a stored event (a resend).
    pub async fn add_delivery(&self, d: &Delivery, ordered: bool) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if ordered {
            lock_ordered(&tx, std::iter::once(d)).await?;
        }
        let new = NewDelivery {
            delivery: d.clone(),
            ordered,
        };
        insert_deliveries(&tx, std::slice::from_ref(&new)).await?;
        notify_work(&tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The delivery as it stands and its event; `None` if either is gone.
    pub async fn attempt_inputs(&self, queued: &Queued) -> Result<Option<(Delivery, Event)>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT d.record, e.id, e.record FROM deliveries d
                 JOIN events e ON e.id = d.event_id WHERE d.id = $1",
            )
            .await?;
        let Some(row) = client.query_opt(&statement, &[&queued.id.as_str()]).await? else {
            return Ok(None);
        };
        let delivery = decode(queued.id.as_str(), row.get(0))?;
        let event = decode(row.get(1), row.get(2))?;
        Ok(Some((delivery, event)))
    }
}
