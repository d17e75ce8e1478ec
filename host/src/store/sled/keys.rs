//! Key encodings of the trees (see the table in the module above):
//! `\0`-separated parts, and queue keys that sort by due time.

use ulid::Ulid;

use crate::clock::Timestamp;
use crate::ids::{DeliveryId, EventId};
use crate::model::Delivery;

pub(super) fn key2(a: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + b.len() + 1);
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k
}

pub(super) fn key3(a: &str, b: &str, c: &str) -> Vec<u8> {
    let mut k = key2(a, b);
    k.push(0);
    k.extend_from_slice(c.as_bytes());
    k
}

pub(super) fn prefix2(a: &str, b: &str) -> Vec<u8> {
    let mut k = key2(a, b);
    k.push(0);
    k
}

/// The `queue` value of a delivery: its subscription's key, then its event.
pub(super) fn queue_value(d: &Delivery) -> Vec<u8> {
    key3(
        d.tenant.as_str(),
        d.subscription_id.as_str(),
        d.event_id.as_str(),
    )
}

/// The ULID of the event a `queue` value names.
pub(super) fn queued_event(value: &[u8]) -> Option<Ulid> {
    EventId::parse_ulid(last_part(value))
}

pub(super) fn queue_key(due: Timestamp, id: &DeliveryId) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + id.as_str().len());
    k.extend_from_slice(&due.as_millis().to_be_bytes());
    k.extend_from_slice(id.as_str().as_bytes());
    k
}

/// A delivery's `event_deliveries` key.
pub(super) fn event_delivery_key(event: &EventId, id: &DeliveryId) -> Vec<u8> {
    key2(event.as_str(), id.as_str())
}

/// A delivery's `sub_pending` key.
pub(super) fn pending_key(d: &Delivery) -> Vec<u8> {
    key3(d.tenant.as_str(), d.subscription_id.as_str(), d.id.as_str())
}

/// A `queue` key's due time and delivery ULID.
pub(super) fn parse_queue_key(k: &[u8]) -> Option<(Timestamp, Ulid)> {
    let due = u64::from_be_bytes(k.get(..8)?.try_into().ok()?);
    let id = DeliveryId::parse_ulid(std::str::from_utf8(&k[8..]).ok()?)?;
    Some((Timestamp(due), id))
}

/// The last `\0`-separated part of a key.
pub(super) fn last_part(k: &[u8]) -> &str {
    let start = k.iter().rposition(|&b| b == 0).map_or(0, |i| i + 1);
    std::str::from_utf8(&k[start..]).unwrap_or_default()
}
