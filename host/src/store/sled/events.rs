//! Events and their deliveries: ingest (staged for the next group commit,
//! or written at once when a delivery is ordered), reads, and resends.

use super::SledStore;
use super::journal::Slot;
use super::keys::{
    event_delivery_key, key2, last_part, pending_key, prefix2, queue_key, queue_value,
};
use super::records::{
    EventWrites, IngestDeliveries, decode, encode, event_writes, read, write_delivery,
};
use crate::ids::{DeliveryId, EventId};
use crate::model::{Delivery, Event};
use crate::store::{Ingested, NewDelivery, Queued, Receipt, Result};

impl SledStore {
    /// Stores the event and its deliveries atomically, unless the tenant
    /// already has an event with the same source id. Not yet durable nor
    /// visible: await [`Store::durable`] before acknowledging or reading it.
    pub fn ingest(&self, event: &Event, deliveries: &[NewDelivery]) -> Result<Ingested> {
        self.readiness()?;
        if deliveries.iter().any(|n| n.ordered) {
            return self.ingest_now(event, deliveries);
        }
        let receipt = Receipt {
            id: event.id.clone(),
            deliveries: deliveries.len(),
        };
        let EventWrites { record, unkept } = event_writes(event, deliveries);
        let mut writes = Vec::with_capacity(2 + deliveries.len() + 2 * unkept.len());
        writes.push((Slot::Events, event.id.as_str().into(), record));
        for NewDelivery { delivery: d, .. } in unkept {
            let index = event_delivery_key(&event.id, &d.id);
            writes.push((Slot::EventDeliveries, index, Vec::new()));
            writes.push((Slot::Deliveries, d.id.as_str().into(), encode(d)));
        }
        for NewDelivery { delivery: d, .. } in deliveries {
            if let Some(due) = d.next_attempt_at {
                writes.push((Slot::Queue, queue_key(due, &d.id), queue_value(d)));
            }
        }
        let source_key = event
            .source_id
            .as_deref()
            .map(|s| key2(event.tenant.as_str(), s));
        let commit = &self.inner.commit.commit;
        let mut staged = commit.lock_staged();
        if let Some(key) = &source_key {
            if let Some(first) = staged.source_ids.get(key) {
                return Ok(Ingested::Duplicate(first.clone()));
            }
            if let Some(first) = self.inner.trees.source_ids.get(key)? {
                return Ok(Ingested::Duplicate(decode(key, &first)?));
            }
            writes.push((Slot::SourceIds, key.clone(), encode(&receipt)));
            staged.source_ids.insert(key.clone(), receipt.clone());
        }
        staged.bytes += writes
            .iter()
            .map(|(_, k, v)| k.len() + v.len())
            .sum::<usize>();
        staged.writes.extend(writes);
        staged.source_keys.extend(source_key);
        Ok(Ingested::New(receipt))
    }

    /// [`Store::ingest`] as its own change, written at once: for events
    /// with deliveries to ordered subscriptions, whose heads are decided from
    /// the committed state.
    fn ingest_now(&self, event: &Event, deliveries: &[NewDelivery]) -> Result<Ingested> {
        let _ordered = self.ordered_lock();
        // Which ordered deliveries become their subscription's head: decided
        // under the lock, before the change, since it needs a scan.
        let queued: Vec<bool> = deliveries
            .iter()
            .map(|n| self.is_head(&n.delivery, n.ordered))
            .collect();
        let receipt = Receipt {
            id: event.id.clone(),
            deliveries: deliveries.len(),
        };
        let source_key = event
            .source_id
            .as_deref()
            .map(|s| key2(event.tenant.as_str(), s));
        // Held through the change so a staged twin cannot slip in between.
        let staged = self.inner.commit.commit.lock_staged();
        if let Some(first) = source_key.as_ref().and_then(|k| staged.source_ids.get(k)) {
            return Ok(Ingested::Duplicate(first.clone()));
        }
        let EventWrites { record, unkept } = event_writes(event, deliveries);
        self.inner.trees.write(|c| {
            if let Some(key) = &source_key {
                if let Some(first) = c.get(Slot::SourceIds, key)? {
                    return Ok(Ingested::Duplicate(decode(key, &first)?));
                }
                c.insert(Slot::SourceIds, key.as_slice(), encode(&receipt));
            }
            c.insert(Slot::Events, event.id.as_str(), record);
            for NewDelivery { delivery: d, .. } in unkept {
                c.insert(
                    Slot::EventDeliveries,
                    event_delivery_key(&event.id, &d.id),
                    &[][..],
                );
            }
            // Rows for all, as every ordered delivery needs one.
            for (
                NewDelivery {
                    delivery: d,
                    ordered,
                },
                &head,
            ) in deliveries.iter().zip(&queued)
            {
                write_delivery(c, d, head);
                if *ordered {
                    c.insert(Slot::SubPending, pending_key(d), &[][..]);
                }
            }
            Ok(Ingested::New(receipt.clone()))
        })
    }

    pub(crate) fn get_event(&self, id: &EventId) -> Result<Option<Event>> {
        let key = id.as_str().as_bytes();
        read(&self.inner.trees.events, key)
    }

    /// The event's deliveries as they stand: those kept in its record (made
    /// at ingest, in ingest order), then those in the index, oldest first.
    pub fn event_deliveries(&self, id: &EventId) -> Result<Vec<Delivery>> {
        let trees = &self.inner.trees;
        let key = id.as_str().as_bytes();
        let ingest = match trees.events.get(key)? {
            Some(record) => IngestDeliveries::read(key, &record)?,
            None => return Ok(Vec::new()),
        };
        let mut out = Vec::with_capacity(ingest.deliveries.len());
        for kept in ingest.deliveries {
            out.push(self.delivery_row(&kept.id)?.unwrap_or(kept));
        }
        for kv in trees.event_deliveries.scan_prefix(key2(id.as_str(), "")) {
            let (k, _) = kv?;
            // Never one of the record's: ingest writes each id to one place.
            if let Ok(dlv) = last_part(&k).parse::<DeliveryId>() {
                out.extend(self.delivery_row(&dlv)?);
            }
        }
        Ok(out)
    }

    /// What an attempt of a queued delivery starts from: the delivery as it
    /// stands and its event, read once; `None` if either is gone.
    pub fn attempt_inputs(&self, queued: &Queued) -> Result<Option<(Delivery, Event)>> {
        let row = self.delivery_row(&queued.id)?;
        let event_id = match (&row, &queued.event) {
            (Some(row), _) => row.event_id.clone(),
            (None, Some(event)) => event.clone(),
            (None, None) => return Ok(None),
        };
        let key = event_id.as_str().as_bytes();
        let Some(record) = self.inner.trees.events.get(key)? else {
            return Ok(None);
        };
        let delivery = match row {
            Some(row) => row,
            None => match IngestDeliveries::read(key, &record)?.take(&queued.id) {
                Some(kept) => kept,
                None => return Ok(None),
            },
        };
        Ok(Some((delivery, decode(key, &record)?)))
    }

    fn delivery_row(&self, id: &DeliveryId) -> Result<Option<Delivery>> {
        let key = id.as_str().as_bytes();
        read(&self.inner.trees.deliveries, key)
    }

    /// Adds one more delivery of a stored event (a resend), queued at its due time.
    pub fn add_delivery(&self, d: &Delivery, ordered: bool) -> Result<()> {
        let _ordered = ordered.then(|| self.ordered_lock());
        let head = self.is_head(d, ordered);
        self.inner.trees.write(|c| {
            write_delivery(c, d, head);
            c.insert(
                Slot::EventDeliveries,
                event_delivery_key(&d.event_id, &d.id),
                &[][..],
            );
            if ordered {
                c.insert(Slot::SubPending, pending_key(d), &[][..]);
            }
            Ok(())
        })
    }

    /// Whether a new delivery runs at once: unordered, or the first its
    /// ordered subscription has pending (call with the ordered lock held).
    fn is_head(&self, d: &Delivery, ordered: bool) -> bool {
        !ordered
            || self
                .inner
                .trees
                .sub_pending
                .scan_prefix(prefix2(d.tenant.as_str(), d.subscription_id.as_str()))
                .next()
                .is_none()
    }
}
