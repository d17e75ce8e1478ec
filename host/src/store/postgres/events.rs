//! Events and their deliveries: ingest (one statement, idempotent by the
//! `(tenant, source_id)` unique index), reads, and resends.

use deadpool_postgres::Transaction;
use deadpool_postgres::tokio_postgres::types::ToSql;

use super::{PgStore, WORK_CHANNEL, decode, encode, ms, subscription_key};
use crate::ids::EventId;
use crate::model::{Delivery, DeliveryState, Event};
use crate::store::{Ingested, NewDelivery, Queued, Receipt, Result, StoreError};

/// Deliveries of one tenant (`$1`) from arrays, one row per element
/// (`$2`..`$8`), `n` their order; what [`INSERT_DELIVERIES`] and [`INGEST`]
/// complete.
macro_rules! delivery_rows {
    () => {
        "INSERT INTO deliveries
            (id, event_id, tenant, subscription_id, pending, ordered, due_ms, record)
        SELECT d.id, d.event_id, $1, d.sub, d.pending, d.ordered, d.due, d.record
        FROM unnest($2::text[], $3::text[], $4::text[], $5::bool[], $6::bool[], $7::int8[], $8::bytea[])
            WITH ORDINALITY AS d(id, event_id, sub, pending, ordered, due, record, n)"
    };
}

/// Inserts deliveries in the order given (so their `seq`s follow it).
const INSERT_DELIVERIES: &str = concat!(delivery_rows!(), " ORDER BY d.n");

/// Ingest in one statement (one round trip): the event (`$9`..`$13`)
/// unless its source id is taken, then, only if it was not, its deliveries
/// in the order given, and a `NOTIFY` (`$14`) if any was queued. Answers
/// whether the event was new.
const INGEST: &str = concat!(
    "WITH event AS (
        INSERT INTO events (id, tenant, source_id, created_ms, deliveries, record)
        VALUES ($9, $1, $10, $11, $12, $13) ON CONFLICT (tenant, source_id) DO NOTHING
        RETURNING id
    ), queued AS (",
    delivery_rows!(),
    " WHERE EXISTS (SELECT 1 FROM event) ORDER BY d.n RETURNING 1
    ), woken AS (
        SELECT pg_notify($14, '') FROM (SELECT 1 FROM queued LIMIT 1) q
    )
    SELECT (SELECT count(*) FROM event), (SELECT count(*) FROM woken)"
);

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

/// [`delivery_rows`]'s arrays (`$2`..`$8`).
struct Columns<'a> {
    ids: Vec<&'a str>,
    events: Vec<&'a str>,
    subscriptions: Vec<&'a str>,
    pending: Vec<bool>,
    ordered: Vec<bool>,
    due: Vec<Option<i64>>,
    records: Vec<Vec<u8>>,
}

impl<'a> Columns<'a> {
    fn of(deliveries: &'a [NewDelivery]) -> Self {
        let mut cols = Columns {
            ids: Vec::with_capacity(deliveries.len()),
            events: Vec::with_capacity(deliveries.len()),
            subscriptions: Vec::with_capacity(deliveries.len()),
            pending: Vec::with_capacity(deliveries.len()),
            ordered: Vec::with_capacity(deliveries.len()),
            due: Vec::with_capacity(deliveries.len()),
            records: Vec::with_capacity(deliveries.len()),
        };
        for NewDelivery {
            delivery: d,
            ordered,
        } in deliveries
        {
            cols.ids.push(d.id.as_str());
            cols.events.push(d.event_id.as_str());
            cols.subscriptions.push(d.subscription_id.as_str());
            cols.pending.push(d.state == DeliveryState::Pending);
            cols.ordered.push(*ordered);
            cols.due.push(d.next_attempt_at.map(ms));
            cols.records.push(encode(d));
        }
        cols
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 7] {
        [
            &self.ids,
            &self.events,
            &self.subscriptions,
            &self.pending,
            &self.ordered,
            &self.due,
            &self.records,
        ]
    }
}

/// Inserts deliveries of one tenant, in the order given.
async fn insert_deliveries(tx: &Transaction<'_>, deliveries: &[NewDelivery]) -> Result<()> {
    let Some(first) = deliveries.first() else {
        return Ok(());
    };
    let cols = Columns::of(deliveries);
    let tenant = first.delivery.tenant.as_str();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&tenant];
    params.extend(cols.params());
    let statement = tx.prepare_cached(INSERT_DELIVERIES).await?;
    tx.execute(&statement, &params).await?;
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
        let cols = Columns::of(deliveries);
        let (id, tenant) = (event.id.as_str(), event.tenant.as_str());
        let created = ms(event.timestamp);
        let count = i32::try_from(deliveries.len()).unwrap_or(i32::MAX);
        let record = encode(event);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&tenant];
        params.extend(cols.params());
        params.extend::<[&(dyn ToSql + Sync); 6]>([
            &id,
            &event.source_id,
            &created,
            &count,
            &record,
            &WORK_CHANNEL,
        ]);
        let mut client = self.client().await?;
        let row = if deliveries.iter().any(|n| n.ordered) {
            // The advisory locks first: a transaction around the statement.
            let tx = client.transaction().await?;
            lock_ordered(
                &tx,
                deliveries.iter().filter(|n| n.ordered).map(|n| &n.delivery),
            )
            .await?;
            let statement = tx.prepare_cached(INGEST).await?;
            let row = tx.query_one(&statement, &params).await?;
            tx.commit().await?;
            row
        } else {
            let statement = client.prepare_cached(INGEST).await?;
            client.query_one(&statement, &params).await?
        };
        if row.get::<_, i64>(0) == 0 {
            let first = client
                .query_one(
                    "SELECT id, deliveries FROM events WHERE tenant = $1 AND source_id = $2",
                    &[&tenant, &event.source_id],
                )
                .await?;
            let id: &str = first.get(0);
            let deliveries: i32 = first.get(1);
            return Ok(Ingested::Duplicate(Receipt {
                id: id.parse().map_err(|e| StoreError::Backend(Box::new(e)))?,
                deliveries: usize::try_from(deliveries).unwrap_or_default(),
            }));
        }
        Ok(Ingested::New(Receipt {
            id: event.id.clone(),
            deliveries: deliveries.len(),
        }))
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
