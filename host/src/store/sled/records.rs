//! How records are encoded (JSON), and an event's record with the
//! deliveries kept in it (see the module above).

use serde::{Deserialize, Serialize};

use super::journal::{Change, Slot};
use super::keys::{key2, queue_key, queue_value};
use super::{Result, StoreError};
use crate::ids::DeliveryId;
use crate::model::{Delivery, Event, Subscription};
use crate::store::{NewDelivery, Queued};

pub(super) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialise to JSON")
}

pub(super) fn decode<T: for<'de> Deserialize<'de>>(key: &[u8], bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

/// Reads and decodes the record at `key`, if there is one.
pub(super) fn read<T: for<'de> Deserialize<'de>>(
    tree: &::sled::Tree,
    key: &[u8],
) -> Result<Option<T>> {
    tree.get(key)?.map(|v| decode(key, &v)).transpose()
}

/// Decodes the value of an entry read by a scan.
pub(super) fn decode_entry<T: for<'de> Deserialize<'de>>(
    kv: ::sled::Result<(::sled::IVec, ::sled::IVec)>,
) -> Result<T> {
    let (k, v) = kv?;
    decode(&k, &v)
}

/// Up to this many deliveries made at ingest are kept in the event's own
/// record, which spares ingest a `deliveries` and an `event_deliveries`
/// write per delivery (sled's cost is per write). Every attempt reads the
/// event, so a long list would be parsed once per delivery: larger fan-outs
/// use rows and the index.
pub(super) const RECORD_DELIVERIES: usize = 16;

/// The `events` value: the event and its ingest deliveries as made.
#[derive(Serialize)]
struct EventRecord<'a> {
    #[serde(flatten)]
    event: &'a Event,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    deliveries: Vec<&'a Delivery>,
}

/// What ingesting `event` writes: the `events` value, and the deliveries
/// it does not keep (see [`RECORD_DELIVERIES`]), which need rows and
/// `event_deliveries` keys.
pub(super) struct EventWrites<'a> {
    pub(super) record: Vec<u8>,
    pub(super) unkept: &'a [NewDelivery],
}

pub(super) fn event_writes<'a>(event: &Event, deliveries: &'a [NewDelivery]) -> EventWrites<'a> {
    if deliveries.len() <= RECORD_DELIVERIES {
        let record = EventRecord {
            event,
            deliveries: deliveries.iter().map(|n| &n.delivery).collect(),
        };
        EventWrites {
            record: encode(&record),
            unkept: &[],
        }
    } else {
        EventWrites {
            record: encode(event),
            unkept: deliveries,
        }
    }
}

/// The ingest deliveries of an `events` value, kept whole; empty when they
/// are all in `event_deliveries`.
#[derive(Deserialize)]
pub(super) struct IngestDeliveries {
    #[serde(default)]
    pub(super) deliveries: Vec<Delivery>,
}

impl IngestDeliveries {
    pub(super) fn read(key: &[u8], record: &[u8]) -> Result<Self> {
        decode(key, record)
    }

    /// The ingest copy of delivery `id`, if the record keeps it.
    pub(super) fn take(self, id: &DeliveryId) -> Option<Delivery> {
        self.deliveries.into_iter().find(|d| &d.id == id)
    }
}

/// the copy in its event's record (see the module doc).
pub(super) fn current_delivery(c: &Change<'_>, q: &Queued) -> Result<Option<Delivery>> {
    let id = q.id.as_str().as_bytes();
    if let Some(raw) = c.get(Slot::Deliveries, id)? {
        return decode(id, &raw).map(Some);
    }
    let Some(event) = &q.event else {
        return Ok(None);
    };
    let key = event.as_str().as_bytes();
    match c.get(Slot::Events, key)? {
        Some(record) => Ok(IngestDeliveries::read(key, &record)?.take(&q.id)),
        None => Ok(None),
    }
}

/// Writes a subscription record within a change.
pub(super) fn write_subscription(c: &mut Change<'_>, sub: &Subscription) {
    c.insert(
        Slot::Subscriptions,
        key2(sub.tenant.as_str(), sub.id.as_str()),
        encode(sub),
    );
}

/// Writes a delivery's row within a change, and its queue entry if `queued`.
pub(super) fn write_delivery(c: &mut Change<'_>, d: &Delivery, queued: bool) {
    c.insert(Slot::Deliveries, d.id.as_str(), encode(d));
    if queued && let Some(due) = d.next_attempt_at {
        c.insert(Slot::Queue, queue_key(due, &d.id), queue_value(d));
    }
}
