//! Durable state in sled: subscriptions, events, deliveries, the due-time
//! queue, attempts and uploaded plugins.
//!
//! Trees and key encodings (`\0` separates parts; ids never contain it, and
//! tenants and subscription ids are validated slugs):
//!
//! | tree | key | value |
//! | --- | --- | --- |
//! | `subscriptions` | `tenant \0 sub_id` | JSON [`Subscription`] |
//! | `events` | `evt_id` | JSON [`Event`], with `deliveries`: the deliveries made at ingest as they were made, when there are at most [`RECORD_DELIVERIES`] (records written before kept only their ids, in `delivery_ids`) |
//! | `source_ids` | `tenant \0 source id` | JSON [`Receipt`] of the first ingest |
//! | `deliveries` | `dlv_id` | JSON [`Delivery`]: every delivery once it has changed, and from the start those not in their event's record |
//! | `event_deliveries` | `evt_id \0 dlv_id` | empty: the deliveries not in the event's record (resends, large fan-outs, records from before it) |
//! | `queue` | `due ms (u64 big-endian) dlv_id` | `tenant \0 sub_id \0 evt_id` (`tenant \0 sub_id` in entries written before): runnable pending deliveries, earliest first |
//! | `sub_pending` | `tenant \0 sub_id \0 dlv_id` | empty: every pending delivery of an `ordered` subscription, in ingest order |
//! | `attempts` | `att_id` | JSON [`Attempt`] |
//! | `sub_attempts` | `tenant \0 sub_id \0 att_id` | empty: per-subscription listing, by time |
//! | `plugins` | `name` | JSON [`PluginRecord`] |
//! | `plugin_blobs` | `sha256 hex` | the component bytes |
//! | `journal` | record number (u64 big-endian) | a change whose writes a flush has not yet covered (see [`journal`]) |
//!
//! Every change (ingest, finishing an attempt, cancelling, a subscription
//! written) goes through the [`journal`]: atomic across the trees it
//! touches, so a crash leaves either all of it or none, without sled
//! transactions and the store-wide lock they bring. Durability is explicit:
//! [`Store::durable`] waits for a flush that covers every write made before
//! the call, and concurrent callers share one flush (group commit) instead
//! of paying one each.
//!
//! Ingests are also batched: every change costs a journal record and sled
//! seals its log buffer at every flush, so one change per event would cost
//! several disk writes each. [`Store::ingest`] checks for a duplicate and
//! stages the encoded records; the commit thread writes everything staged
//! as one change just before its next flush. A staged event is therefore
//! visible to readers only once [`Store::durable`] has returned, which is
//! when it may be acknowledged anyway. Events with a delivery to an
//! `ordered` subscription are written at once instead, since picking the
//! head needs the committed state.
//!
//! A delivery is in `queue` while it may run; an `ordered` subscription's
//! deliveries wait in `sub_pending` only, and the head is queued when the one
//! before it finishes. Ids sort by time, so `sub_pending` order is ingest order.
//! Unordered deliveries are never in `sub_pending`: every pending one is in
//! `queue`, whose values name the subscription, so cancelling finds them
//! there. That keeps a delivery to two index writes (queue in, queue out)
//! instead of four, and index writes are what sled spends its time on.
//! Ordering applies to deliveries created while the subscription is
//! ordered; turning it off releases those still waiting.
//!
//! A delivery's current record is its `deliveries` row if it has one, else
//! the copy in its event's record. Ingest writes no row for the deliveries it
//! lists there (sled's cost is per write, and most deliveries change once,
//! when their first attempt ends); the queue entry names the event so an
//! attempt can find that copy. Rows are never deleted, so a delivery without
//! one has not changed since ingest. Deliveries of `ordered` subscriptions
//! always have rows, since their heads are picked by reading rows.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::clock::Timestamp;
use crate::ids::{AttemptId, DeliveryId, EventId, PluginName, SubscriptionId, Tenant};
use crate::model::{Attempt, Delivery, DeliveryState, Event, Subscription};

mod journal;

use journal::{Change, Journal, Slot};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("stored record {key} is unreadable: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
    #[error("storage journal: {0}")]
    Journal(String),
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// sled's page cache size. The hot pages (the queue head, the newest
/// events, deliveries and attempts) fit in a few MiB; pages past it are
/// read back from the OS page cache. In the dispatch benchmark 32 -> 8 MiB
/// took peak RSS down by 20-25 MiB with throughput within run-to-run noise.
const CACHE_BYTES: u64 = 8 << 20;

/// How long opening waits for the data directory's lock (see [`open_db`]).
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Deliveries changed per change when cancelling or releasing a
/// subscription's backlog: one change each would write a journal record
/// per delivery, one for all would hold a huge write set in memory.
const CHANGE_CHUNK: usize = 256;

/// The answer given to a source for an ingested event; repeated for a duplicate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub id: EventId,
    pub deliveries: usize,
}

/// What ingesting did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    New(Receipt),
    /// The tenant already had an event with this source id: its first receipt.
    Duplicate(Receipt),
}

/// Where an uploaded or configured plugin came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginSource {
    Config,
    Api,
}

/// A named plugin version kept in sled (uploaded through the API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRecord {
    pub name: PluginName,
    pub sha256: String,
    pub size: usize,
    pub updated_at: Timestamp,
    /// The uploader's per-call timeout in milliseconds; `None` in records
    /// written before uploads could set one, which run with the default.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// The uploader's linear memory cap in bytes; `None` as for `timeout_ms`.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
}

/// Everything that changes when an attempt ends, written at once.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub attempt: Attempt,
    /// The delivery after the attempt: still pending with a new due time, or final.
    pub delivery: Delivery,
    /// The subscription, when the attempt changed it (failure count, disabling).
    pub subscription: Option<Subscription>,
    /// The delivery as the attempt found it: where it stands if it still has
    /// no row when the attempt is recorded (see the module doc).
    pub found: Delivery,
}

/// A page of attempts, newest first, and the cursor for the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptSlice {
    pub attempts: Vec<Attempt>,
    pub next: Option<AttemptId>,
}

/// Due work found by [`Store::due`].
#[derive(Debug, Default, PartialEq)]
pub struct DueWork {
    pub ready: Vec<Queued>,
    /// When the earliest not-yet-due (or skipped) entry falls due, if any.
    pub next_due: Option<Timestamp>,
    /// Where the last ready entry sits in the queue: the next scan can start
    /// after it instead of walking past everything already handed out.
    pub last: Option<QueuePosition>,
}

/// A runnable delivery found in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub id: DeliveryId,
    /// Its event, where the entry names it (see the module doc).
    pub event: Option<EventId>,
}

/// A place in the due-time queue (an entry's key), ordered as the queue is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct QueuePosition(sled::IVec);

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    trees: Arc<Trees>,
    /// Shared with the commit thread, which applies the subscription
    /// changes of batched attempts as it commits them.
    index: Arc<RwLock<SubscriptionIndex>>,
    /// Serialises changes to ordered subscriptions' heads: picking the next
    /// delivery needs a range scan, made before the change is built.
    ordered: Mutex<()>,
    commit: Flusher,
}

/// Every tree of the database (see the module doc), shared by the store
/// and its commit thread.
struct Trees {
    subscriptions: sled::Tree,
    events: sled::Tree,
    source_ids: sled::Tree,
    deliveries: sled::Tree,
    event_deliveries: sled::Tree,
    queue: sled::Tree,
    sub_pending: sled::Tree,
    attempts: sled::Tree,
    sub_attempts: sled::Tree,
    plugins: sled::Tree,
    plugin_blobs: sled::Tree,
    journal: Journal,
}

fn key2(a: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + b.len() + 1);
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k
}

fn key3(a: &str, b: &str, c: &str) -> Vec<u8> {
    let mut k = key2(a, b);
    k.push(0);
    k.extend_from_slice(c.as_bytes());
    k
}

fn prefix2(a: &str, b: &str) -> Vec<u8> {
    let mut k = key2(a, b);
    k.push(0);
    k
}

/// The `queue` value of a delivery: its subscription's key, then its event.
fn queue_value(d: &Delivery) -> Vec<u8> {
    key3(
        d.tenant.as_str(),
        d.subscription_id.as_str(),
        d.event_id.as_str(),
    )
}

/// Whether a `queue` value belongs to the subscription (`sub` is its
/// `tenant \0 sub_id` key); entries from before values named the event
/// hold that key alone.
fn queued_for(value: &[u8], sub: &[u8]) -> bool {
    value
        .strip_prefix(sub)
        .is_some_and(|rest| rest.is_empty() || rest[0] == 0)
}

/// The event a `queue` value names; `None` in entries from before, whose
/// deliveries all have rows.
fn queued_event(value: &[u8]) -> Option<EventId> {
    let parts = value.iter().filter(|&&b| b == 0).count() + 1;
    (parts == 3)
        .then(|| last_part(value).parse().ok())
        .flatten()
}

fn queue_key(due: Timestamp, id: &DeliveryId) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + id.as_str().len());
    k.extend_from_slice(&due.as_millis().to_be_bytes());
    k.extend_from_slice(id.as_str().as_bytes());
    k
}

/// A delivery's `event_deliveries` key.
fn event_delivery_key(event: &EventId, id: &DeliveryId) -> Vec<u8> {
    key2(event.as_str(), id.as_str())
}

/// A delivery's `sub_pending` key.
fn pending_key(d: &Delivery) -> Vec<u8> {
    key3(d.tenant.as_str(), d.subscription_id.as_str(), d.id.as_str())
}

fn parse_queue_key(k: &[u8]) -> Option<(Timestamp, DeliveryId)> {
    let due = u64::from_be_bytes(k.get(..8)?.try_into().ok()?);
    let id = std::str::from_utf8(&k[8..]).ok()?.parse().ok()?;
    Some((Timestamp(due), id))
}

/// The last `\0`-separated part of a key.
fn last_part(k: &[u8]) -> &str {
    let start = k.iter().rposition(|&b| b == 0).map_or(0, |i| i + 1);
    std::str::from_utf8(&k[start..]).unwrap_or_default()
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialise to JSON")
}

fn decode<T: for<'de> Deserialize<'de>>(key: &[u8], bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

/// Up to this many deliveries made at ingest are kept in the event's own
/// record, which spares ingest a `deliveries` and an `event_deliveries`
/// write per delivery (sled's cost is per write). Every attempt reads the
/// event, so a long list would be parsed once per delivery: larger fan-outs
/// use rows and the index.
const RECORD_DELIVERIES: usize = 16;

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
struct EventWrites<'a> {
    record: Vec<u8>,
    unkept: &'a [(Delivery, bool)],
}

fn event_writes<'a>(event: &Event, deliveries: &'a [(Delivery, bool)]) -> EventWrites<'a> {
    if deliveries.len() <= RECORD_DELIVERIES {
        let record = EventRecord {
            event,
            deliveries: deliveries.iter().map(|(d, _)| d).collect(),
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

/// The ingest deliveries of an `events` value: kept whole, or (records
/// written before that) by id only, with their rows in `deliveries`. Both
/// empty when they are all in `event_deliveries`.
#[derive(Deserialize)]
struct IngestDeliveries {
    #[serde(default)]
    deliveries: Vec<Delivery>,
    #[serde(default)]
    delivery_ids: Vec<DeliveryId>,
}

impl IngestDeliveries {
    fn read(key: &[u8], record: &[u8]) -> Result<Self> {
        decode(key, record)
    }

    /// The ingest copy of delivery `id`, if the record keeps it.
    fn take(self, id: &DeliveryId) -> Option<Delivery> {
        self.deliveries.into_iter().find(|d| &d.id == id)
    }
}

/// Decodes the value of an entry read by a scan.
fn decode_entry<T: for<'de> Deserialize<'de>>(
    kv: sled::Result<(sled::IVec, sled::IVec)>,
) -> Result<T> {
    let (k, v) = kv?;
    decode(&k, &v)
}

/// Opens sled, waiting up to [`LOCK_WAIT`] for its file lock.
///
/// sled's I/O threads hold the lock until their last queued write is done,
/// a moment after the last handle of a closed `Db` is dropped. Opening the
/// directory again right away (a restart in the same process, or a new
/// process while the old one exits) would otherwise fail at random.
fn open_db(path: &Path) -> Result<sled::Db> {
    let config = sled::Config::new()
        .path(path)
        // Writers wait for explicit group-committed flushes instead.
        .flush_every_ms(None)
        // sled's default page cache is 1 GiB; hot data (the queue head,
        // recent events and deliveries) is far smaller, and the cache
        // is most of the process's memory.
        .cache_capacity(CACHE_BYTES);
    let started = Instant::now();
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if e.to_string().starts_with("could not acquire lock")
                    && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(LOCK_WAIT / 100);
            }
            opened => return Ok(opened?),
        }
    }
}

fn put_subscription(c: &mut Change<'_>, sub: &Subscription) {
    c.insert(
        Slot::Subscriptions,
        key2(sub.tenant.as_str(), sub.id.as_str()),
        encode(sub),
    );
}

fn put_delivery(c: &mut Change<'_>, d: &Delivery, queued: bool) {
    c.insert(Slot::Deliveries, d.id.as_str(), encode(d));
    if queued && let Some(due) = d.next_attempt_at {
        c.insert(Slot::Queue, queue_key(due, &d.id), queue_value(d));
    }
}

impl Store {
    pub fn open(path: &Path) -> Result<Self> {
        let db = open_db(path)?;
        let trees = Arc::new(Trees {
            subscriptions: db.open_tree("subscriptions")?,
            events: db.open_tree("events")?,
            source_ids: db.open_tree("source_ids")?,
            deliveries: db.open_tree("deliveries")?,
            event_deliveries: db.open_tree("event_deliveries")?,
            queue: db.open_tree("queue")?,
            sub_pending: db.open_tree("sub_pending")?,
            attempts: db.open_tree("attempts")?,
            sub_attempts: db.open_tree("sub_attempts")?,
            plugins: db.open_tree("plugins")?,
            plugin_blobs: db.open_tree("plugin_blobs")?,
            journal: Journal::new(db.open_tree("journal")?),
        });
        trees.journal.replay(&trees)?;
        let index = Arc::new(RwLock::new(SubscriptionIndex::default()));
        let inner = Inner {
            trees: trees.clone(),
            index: index.clone(),
            ordered: Mutex::new(()),
            commit: Flusher::start(db, trees, index),
        };
        let store = Store {
            inner: Arc::new(inner),
        };
        let all = store.all_subscriptions()?;
        store.index_write().rebuild(all);
        Ok(store)
    }

    /// Waits until everything written before this call is on disk.
    pub async fn durable(&self) -> Result<()> {
        self.inner.commit.commit.wait().await
    }

    fn index_read(&self) -> std::sync::RwLockReadGuard<'_, SubscriptionIndex> {
        self.inner.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn index_write(&self) -> std::sync::RwLockWriteGuard<'_, SubscriptionIndex> {
        self.inner.index.write().unwrap_or_else(|e| e.into_inner())
    }

    fn ordered_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner.ordered.lock().unwrap_or_else(|e| e.into_inner())
    }

    // --- subscriptions ---

    /// Creates or replaces the subscription; one that stops being ordered
    /// releases whatever still waits behind its head.
    pub fn put_subscription(&self, sub: &Subscription) -> Result<()> {
        let _ordered = self.ordered_lock();
        let was_ordered = self
            .index_read()
            .get(&sub.tenant, &sub.id)
            .is_some_and(|before| before.ordered);
        self.inner.trees.write(|c| {
            put_subscription(c, sub);
            Ok(())
        })?;
        self.index_write().put(sub.clone());
        if was_ordered && !sub.ordered {
            self.release_waiting(&sub.tenant, &sub.id)?;
        }
        Ok(())
    }

    pub fn get_subscription(
        &self,
        tenant: &Tenant,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>> {
        let key = key2(tenant.as_str(), id.as_str());
        self.inner
            .trees
            .subscriptions
            .get(&key)?
            .map(|v| decode(&key, &v))
            .transpose()
    }

    pub fn list_subscriptions(&self, tenant: &Tenant) -> Result<Vec<Subscription>> {
        let prefix = key2(tenant.as_str(), "");
        self.inner
            .trees
            .subscriptions
            .scan_prefix(prefix)
            .map(decode_entry)
            .collect()
    }

    pub fn all_subscriptions(&self) -> Result<Vec<Subscription>> {
        self.inner
            .trees
            .subscriptions
            .iter()
            .map(decode_entry)
            .collect()
    }

    /// The subscription as of its last change, from the in-memory index:
    /// what an attempt runs with, without a read and a decode per delivery.
    pub fn current_subscription(
        &self,
        tenant: &Tenant,
        id: &SubscriptionId,
    ) -> Option<Arc<Subscription>> {
        self.index_read().get(tenant, id)
    }

    /// The tenant's enabled subscriptions that want this event type.
    pub fn matching_subscriptions(
        &self,
        tenant: &Tenant,
        event_type: &str,
    ) -> Vec<Arc<Subscription>> {
        self.index_read().matching(tenant, event_type)
    }

    /// Removes the subscription and cancels its pending deliveries.
    pub fn delete_subscription(
        &self,
        tenant: &Tenant,
        id: &SubscriptionId,
        now: Timestamp,
    ) -> Result<bool> {
        self.cancel_pending(tenant, id, now)?;
        let key = key2(tenant.as_str(), id.as_str());
        let existed = self.inner.trees.write(|c| {
            let existed = c.get(Slot::Subscriptions, &key)?.is_some();
            c.remove(Slot::Subscriptions, key);
            Ok(existed)
        })?;
        self.index_write().remove(tenant, id);
        Ok(existed)
    }

    /// Marks every pending delivery of the subscription `cancelled`: those
    /// waiting in `sub_pending` (ordered) and those in `queue` (the heads,
    /// and every pending delivery of an unordered subscription).
    pub fn cancel_pending(
        &self,
        tenant: &Tenant,
        id: &SubscriptionId,
        _now: Timestamp,
    ) -> Result<usize> {
        let _ordered = self.ordered_lock();
        let sub_key = key2(tenant.as_str(), id.as_str());
        let mut ids = self.waiting(tenant, id)?;
        for kv in self.inner.trees.queue.iter() {
            let (k, v) = kv?;
            if queued_for(&v, &sub_key)
                && let Some((_, dlv)) = parse_queue_key(&k)
            {
                ids.push(Queued {
                    id: dlv,
                    event: queued_event(&v),
                });
            }
        }
        ids.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        ids.dedup_by(|a, b| a.id == b.id);
        let cancelled = self.take_pending(tenant, id, &ids, |d, c| {
            if let Some(due) = d.next_attempt_at.take() {
                c.remove(Slot::Queue, queue_key(due, &d.id));
            }
            d.state = DeliveryState::Cancelled;
            c.insert(Slot::Deliveries, d.id.as_str(), encode(d));
        })?;
        Ok(cancelled.len())
    }

    /// The ids in the subscription's `sub_pending` range (call with the
    /// ordered lock held).
    fn waiting(&self, tenant: &Tenant, id: &SubscriptionId) -> Result<Vec<Queued>> {
        let prefix = prefix2(tenant.as_str(), id.as_str());
        let mut ids = Vec::new();
        for kv in self.inner.trees.sub_pending.scan_prefix(&prefix) {
            let (k, _) = kv?;
            if let Ok(dlv) = last_part(&k).parse() {
                // Ordered deliveries always have rows.
                ids.push(Queued {
                    id: dlv,
                    event: None,
                });
            }
        }
        Ok(ids)
    }

    /// Queues every delivery still waiting its turn in an ordered
    /// subscription that is not ordered any more (the head is queued
    /// already: it moves to the same place).
    fn release_waiting(&self, tenant: &Tenant, id: &SubscriptionId) -> Result<()> {
        let ids = self.waiting(tenant, id)?;
        let released = self.take_pending(tenant, id, &ids, |d, c| {
            if let Some(due) = d.next_attempt_at {
                c.insert(Slot::Queue, queue_key(due, &d.id), queue_value(d));
            }
        })?;
        let lowest = released
            .iter()
            .filter_map(|d| Some(queue_key(d.next_attempt_at?, &d.id)))
            .min();
        if let Some(key) = lowest {
            self.inner.commit.commit.queued(key);
        }
        Ok(())
    }

    /// Takes the subscription's deliveries `ids` out of `sub_pending` and
    /// applies `change` to those still pending, [`CHANGE_CHUNK`] per
    /// change; returns them as changed.
    fn take_pending(
        &self,
        tenant: &Tenant,
        id: &SubscriptionId,
        ids: &[Queued],
        change: impl Fn(&mut Delivery, &mut Change<'_>),
    ) -> Result<Vec<Delivery>> {
        let mut changed = Vec::new();
        for chunk in ids.chunks(CHANGE_CHUNK) {
            changed.extend(self.inner.trees.write(|c| {
                let mut changed = Vec::with_capacity(chunk.len());
                for q in chunk {
                    let dlv = &q.id;
                    c.remove(
                        Slot::SubPending,
                        key3(tenant.as_str(), id.as_str(), dlv.as_str()),
                    );
                    let Some(mut d) = current_delivery(c, q)? else {
                        continue;
                    };
                    if d.state == DeliveryState::Pending {
                        change(&mut d, c);
                        changed.push(d);
                    }
                }
                Ok(changed)
            })?);
        }
        Ok(changed)
    }

    // --- events and deliveries ---

    /// Stores the event and its deliveries atomically, unless the tenant
    /// already has an event with the same source id. Not yet durable nor
    /// visible: await [`Store::durable`] before acknowledging or reading it.
    pub fn ingest(&self, event: &Event, deliveries: &[(Delivery, bool)]) -> Result<Ingested> {
        // `bool`: the delivery's subscription is ordered.
        if deliveries.iter().any(|(_, ordered)| *ordered) {
            return self.ingest_now(event, deliveries);
        }
        let receipt = Receipt {
            id: event.id.clone(),
            deliveries: deliveries.len(),
        };
        let EventWrites { record, unkept } = event_writes(event, deliveries);
        let mut writes = Vec::with_capacity(2 + deliveries.len() + 2 * unkept.len());
        writes.push((Slot::Events, event.id.as_str().into(), record));
        for (d, _) in unkept {
            let index = event_delivery_key(&event.id, &d.id);
            writes.push((Slot::EventDeliveries, index, Vec::new()));
            writes.push((Slot::Deliveries, d.id.as_str().into(), encode(d)));
        }
        for (d, _) in deliveries {
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
        staged.writes.extend(writes);
        staged.source_keys.extend(source_key);
        Ok(Ingested::New(receipt))
    }

    /// [`Store::ingest`] as its own change, written at once: for events
    /// with deliveries to ordered subscriptions, whose heads are decided from
    /// the committed state.
    fn ingest_now(&self, event: &Event, deliveries: &[(Delivery, bool)]) -> Result<Ingested> {
        let _ordered = self.ordered_lock();
        // Which ordered deliveries become their subscription's head: decided
        // under the lock, before the change, since it needs a scan.
        let mut queued = Vec::with_capacity(deliveries.len());
        for (d, ordered) in deliveries {
            let head = !*ordered
                || self
                    .inner
                    .trees
                    .sub_pending
                    .scan_prefix(prefix2(d.tenant.as_str(), d.subscription_id.as_str()))
                    .next()
                    .is_none();
            queued.push(head);
        }
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
        let earliest = deliveries
            .iter()
            .zip(&queued)
            .filter(|(_, head)| **head)
            .filter_map(|((d, _), _)| Some(queue_key(d.next_attempt_at?, &d.id)))
            .min();
        let EventWrites { record, unkept } = event_writes(event, deliveries);
        let ingested = self.inner.trees.write(|c| {
            if let Some(key) = &source_key {
                if let Some(first) = c.get(Slot::SourceIds, key)? {
                    return Ok(Ingested::Duplicate(decode(key, &first)?));
                }
                c.insert(Slot::SourceIds, key.as_slice(), encode(&receipt));
            }
            c.insert(Slot::Events, event.id.as_str(), record);
            for (d, _) in unkept {
                c.insert(
                    Slot::EventDeliveries,
                    event_delivery_key(&event.id, &d.id),
                    &[][..],
                );
            }
            // Rows for all, as every ordered delivery needs one.
            for ((d, ordered), &head) in deliveries.iter().zip(&queued) {
                put_delivery(c, d, head);
                if *ordered {
                    c.insert(Slot::SubPending, pending_key(d), &[][..]);
                }
            }
            Ok(Ingested::New(receipt.clone()))
        })?;
        if let Some(key) = earliest {
            self.inner.commit.commit.queued(key);
        }
        Ok(ingested)
    }

    pub fn get_event(&self, id: &EventId) -> Result<Option<Event>> {
        let key = id.as_str().as_bytes();
        self.inner
            .trees
            .events
            .get(key)?
            .map(|v| decode(key, &v))
            .transpose()
    }

    /// The event's deliveries as they stand: those kept or listed in its
    /// record (made at ingest, in ingest order), then those in the index,
    /// oldest first.
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
        let mut ids = ingest.delivery_ids;
        for kv in trees.event_deliveries.scan_prefix(key2(id.as_str(), "")) {
            let (k, _) = kv?;
            // Never one of the record's: ingest writes each id to one place.
            ids.extend(last_part(&k).parse::<DeliveryId>());
        }
        for dlv in &ids {
            out.extend(self.delivery_row(dlv)?);
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
        self.inner
            .trees
            .deliveries
            .get(key)?
            .map(|v| decode(key, &v))
            .transpose()
    }

    /// Adds one more delivery of a stored event (a resend), queued at its due time.
    pub fn add_delivery(&self, d: &Delivery, ordered: bool) -> Result<()> {
        let _ordered = ordered.then(|| self.ordered_lock());
        let head = !ordered
            || self
                .inner
                .trees
                .sub_pending
                .scan_prefix(prefix2(d.tenant.as_str(), d.subscription_id.as_str()))
                .next()
                .is_none();
        self.inner.trees.write(|c| {
            put_delivery(c, d, head);
            c.insert(
                Slot::EventDeliveries,
                event_delivery_key(&d.event_id, &d.id),
                &[][..],
            );
            if ordered {
                c.insert(Slot::SubPending, pending_key(d), &[][..]);
            }
            Ok(())
        })?;
        if head && let Some(due) = d.next_attempt_at {
            self.inner.commit.commit.queued(queue_key(due, &d.id));
        }
        Ok(())
    }

    /// Runnable deliveries due at `now`, earliest first, at most `limit`,
    /// passing over those `skip` says are already running.
    pub fn due(
        &self,
        now: Timestamp,
        limit: usize,
        skip: impl Fn(&DeliveryId) -> bool,
    ) -> Result<DueWork> {
        self.due_after(now, limit, Bound::Unbounded, skip)
    }

    /// [`Store::due`] looking only from `from` on. Entries before it are
    /// not seen: see [`Store::take_queued_since`] for when that is safe.
    pub fn due_after(
        &self,
        now: Timestamp,
        limit: usize,
        from: Bound<&QueuePosition>,
        skip: impl Fn(&DeliveryId) -> bool,
    ) -> Result<DueWork> {
        let start = from.map(|p| p.0.clone());
        let mut work = DueWork::default();
        for kv in self.inner.trees.queue.range((start, Bound::Unbounded)) {
            let (k, v) = kv?;
            let Some((due, id)) = parse_queue_key(&k) else {
                continue;
            };
            if due > now {
                work.next_due = Some(work.next_due.map_or(due, |n| n.min(due)));
                break;
            }
            if skip(&id) {
                continue;
            }
            if work.ready.len() == limit {
                work.next_due = Some(due);
                break;
            }
            work.ready.push(Queued {
                id,
                event: queued_event(&v),
            });
            work.last = Some(QueuePosition(k));
        }
        Ok(work)
    }

    /// The lowest queue position written since the last call (or a lower
    /// bound of it), if anything was queued. Noted once the entry is visible
    /// to [`Store::due_after`], so a reader that calls this before scanning
    /// from a position learns whether an entry may have landed behind that
    /// position. Ids grow with time, so fresh deliveries due now land after
    /// a position handed out earlier, even in the same millisecond.
    pub fn take_queued_since(&self) -> Option<QueuePosition> {
        self.inner
            .commit
            .commit
            .lock_low_water()
            .take()
            .map(|key| QueuePosition(key.into()))
    }

    /// Number of runnable queued deliveries (for the queue-depth gauge).
    pub fn queue_len(&self) -> usize {
        self.inner.trees.queue.len()
    }

    /// Records an attempt and its consequences, durably. Attempts of
    /// unordered deliveries are batched with whatever else is staged (one
    /// change and one flush for all); ordered ones go through
    /// [`Store::finish_attempt`], which picks the next head.
    pub async fn record_attempt(
        &self,
        result: &AttemptResult,
        ordered: bool,
        now: Timestamp,
    ) -> Result<()> {
        if ordered {
            self.finish_attempt(result, ordered, now)?;
            return self.durable().await;
        }
        let staged = StagedFinish::new(result);
        self.inner.commit.commit.lock_staged().finishes.push(staged);
        self.durable().await
    }

    /// Records an attempt and its consequences in one change. When the
    /// delivery ends and its subscription is ordered, the next pending delivery
    /// of that subscription is queued at `now`. A delivery that was cancelled
    /// while the attempt ran keeps its state; the attempt is still recorded.
    pub fn finish_attempt(
        &self,
        result: &AttemptResult,
        ordered: bool,
        now: Timestamp,
    ) -> Result<()> {
        let d = &result.delivery;
        let _ordered = ordered.then(|| self.ordered_lock());
        let pending = pending_key(d);
        // The next head, found before the change (the lock keeps it valid).
        let next_head = if ordered && d.state.is_final() {
            let prefix = prefix2(d.tenant.as_str(), d.subscription_id.as_str());
            let mut next = None;
            for kv in self.inner.trees.sub_pending.scan_prefix(&prefix) {
                let (k, _) = kv?;
                if k != pending {
                    next = last_part(&k).parse::<DeliveryId>().ok();
                    break;
                }
            }
            next
        } else {
            None
        };
        // Held across the change, as in a batch (`commit_batch`).
        let mut index = result.subscription.is_some().then(|| self.index_write());
        let staged = StagedFinish::new(result);
        let wrote_subscription = self.inner.trees.write(|c| {
            if !finish_in(c, &staged)? {
                return Ok(false);
            }
            if ordered && d.state.is_final() {
                c.remove(Slot::SubPending, pending.as_slice());
                if let Some(next) = &next_head
                    && let Some(raw) = c.get(Slot::Deliveries, next.as_str().as_bytes())?
                {
                    let mut n: Delivery = decode(next.as_str().as_bytes(), &raw)?;
                    n.next_attempt_at = Some(now.max(n.next_attempt_at.unwrap_or(now)));
                    put_delivery(c, &n, true);
                }
            }
            Ok(result.subscription.is_some())
        })?;
        if let (Some(index), Some(sub), true) =
            (index.as_mut(), &result.subscription, wrote_subscription)
        {
            index.put(sub.clone());
        }
        drop(index);
        // The next head is queued at `now` or later: its key at `now` is a
        // lower bound, which is all a reader of the low-water mark needs.
        let requeued = d
            .next_attempt_at
            .map(|due| queue_key(due, &d.id))
            .into_iter()
            .chain(next_head.as_ref().map(|next| queue_key(now, next)));
        if let Some(key) = requeued.min() {
            self.inner.commit.commit.queued(key);
        }
        Ok(())
    }

    // --- attempts ---

    pub fn get_attempt(&self, id: &AttemptId) -> Result<Option<Attempt>> {
        let key = id.as_str().as_bytes();
        self.inner
            .trees
            .attempts
            .get(key)?
            .map(|v| decode(key, &v))
            .transpose()
    }

    /// The subscription's attempts, newest first, strictly older than `before`.
    pub fn list_attempts(
        &self,
        tenant: &Tenant,
        sub: &SubscriptionId,
        limit: usize,
        before: Option<&AttemptId>,
    ) -> Result<AttemptSlice> {
        let prefix = prefix2(tenant.as_str(), sub.as_str());
        let end = match before {
            Some(b) => key3(tenant.as_str(), sub.as_str(), b.as_str()),
            None => {
                let mut e = prefix.clone();
                e.push(0xff);
                e
            }
        };
        let mut attempts = Vec::with_capacity(limit.min(256));
        let mut next = None;
        for kv in self
            .inner
            .trees
            .sub_attempts
            .range(prefix.as_slice()..end.as_slice())
            .rev()
        {
            let (k, _) = kv?;
            let Ok(id) = last_part(&k).parse::<AttemptId>() else {
                continue;
            };
            if attempts.len() == limit {
                next = attempts.last().map(|a: &Attempt| a.id.clone());
                break;
            }
            if let Some(a) = self.get_attempt(&id)? {
                attempts.push(a);
            }
        }
        Ok(AttemptSlice { attempts, next })
    }

    // --- plugins ---

    pub fn put_plugin(&self, record: &PluginRecord, wasm: &[u8]) -> Result<()> {
        self.inner.trees.write(|c| {
            c.insert(Slot::PluginBlobs, record.sha256.as_str(), wasm);
            c.insert(Slot::Plugins, record.name.as_str(), encode(record));
            Ok(())
        })
    }

    pub fn list_plugins(&self) -> Result<Vec<PluginRecord>> {
        self.inner.trees.plugins.iter().map(decode_entry).collect()
    }

    pub fn plugin_blob(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .inner
            .trees
            .plugin_blobs
            .get(sha256.as_bytes())?
            .map(|v| v.to_vec()))
    }
}

/// Enabled subscriptions by tenant and event type, so matching an event costs
/// a hash lookup plus the tenant's wildcard patterns, not a scan of them all.
/// Adding, changing or removing one subscription touches only its own
/// entries, so declaring thousands at start is linear.
#[derive(Default)]
struct SubscriptionIndex {
    tenants: HashMap<Tenant, TenantIndex>,
}

#[derive(Default)]
struct TenantIndex {
    all: HashMap<SubscriptionId, Arc<Subscription>>,
    exact: HashMap<String, Vec<Arc<Subscription>>>,
    patterns: Vec<Arc<Subscription>>,
}

impl TenantIndex {
    fn insert(&mut self, sub: Arc<Subscription>) {
        self.remove(&sub.id);
        if sub.enabled {
            if sub.events.iter().any(|p| p.ends_with('*')) {
                self.patterns.push(sub.clone());
            }
            for exact in sub.events.iter().filter(|p| !p.ends_with('*')) {
                let list = self.exact.entry(exact.clone()).or_default();
                if !list.iter().any(|s| s.id == sub.id) {
                    list.push(sub.clone());
                }
            }
        }
        self.all.insert(sub.id.clone(), sub);
    }

    fn remove(&mut self, id: &SubscriptionId) {
        let Some(old) = self.all.remove(id) else {
            return;
        };
        self.patterns.retain(|s| &s.id != id);
        for exact in old.events.iter().filter(|p| !p.ends_with('*')) {
            if let Some(list) = self.exact.get_mut(exact) {
                list.retain(|s| &s.id != id);
                if list.is_empty() {
                    self.exact.remove(exact);
                }
            }
        }
    }
}

impl SubscriptionIndex {
    fn rebuild(&mut self, subs: Vec<Subscription>) {
        self.tenants.clear();
        for s in subs {
            self.put(s);
        }
    }

    fn put(&mut self, sub: Subscription) {
        self.tenants
            .entry(sub.tenant.clone())
            .or_default()
            .insert(Arc::new(sub));
    }

    fn remove(&mut self, tenant: &Tenant, id: &SubscriptionId) {
        if let Some(t) = self.tenants.get_mut(tenant) {
            t.remove(id);
        }
    }

    fn get(&self, tenant: &Tenant, id: &SubscriptionId) -> Option<Arc<Subscription>> {
        self.tenants.get(tenant)?.all.get(id).cloned()
    }

    fn matching(&self, tenant: &Tenant, event_type: &str) -> Vec<Arc<Subscription>> {
        let Some(t) = self.tenants.get(tenant) else {
            return Vec::new();
        };
        let mut out: Vec<Arc<Subscription>> = t.exact.get(event_type).cloned().unwrap_or_default();
        for sub in t.patterns.iter().filter(|s| s.matches(event_type)) {
            if !out.iter().any(|s| s.id == sub.id) {
                out.push(sub.clone());
            }
        }
        out
    }
}

/// A finished attempt, encoded for [`finish_in`]; an unordered delivery's
/// is staged for the next batch.
struct StagedFinish {
    attempt_id: Vec<u8>,
    attempt: Vec<u8>,
    sub_attempt_key: Vec<u8>,
    delivery_id: Vec<u8>,
    delivery: Vec<u8>,
    /// The queue entry of the delivery's next attempt, if it stays pending.
    requeue: Option<(Vec<u8>, Vec<u8>)>,
    subscription: Option<Subscription>,
    /// [`AttemptResult::found`].
    found: Delivery,
}

impl StagedFinish {
    fn new(result: &AttemptResult) -> Self {
        let (d, a) = (&result.delivery, &result.attempt);
        StagedFinish {
            attempt_id: a.id.as_str().into(),
            attempt: encode(a),
            sub_attempt_key: key3(a.tenant.as_str(), a.subscription_id.as_str(), a.id.as_str()),
            delivery_id: d.id.as_str().into(),
            delivery: encode(d),
            requeue: d
                .next_attempt_at
                .map(|due| (queue_key(due, &d.id), queue_value(d))),
            subscription: result.subscription.clone(),
            found: result.found.clone(),
        }
    }
}

/// Ingests accepted but not yet written to sled.
#[derive(Default)]
struct Staged {
    writes: Vec<(Slot, Vec<u8>, Vec<u8>)>,
    finishes: Vec<StagedFinish>,
    /// Receipts by `tenant \0 source id`, kept until their batch is
    /// committed so a duplicate is caught while its first is in flight.
    source_ids: HashMap<Vec<u8>, Receipt>,
    /// The source keys of `writes`, to forget once they are committed.
    source_keys: Vec<Vec<u8>>,
}

/// A queued delivery as it stands, read within a change: its row, else
/// the copy in its event's record (see the module doc).
fn current_delivery(c: &Change<'_>, q: &Queued) -> Result<Option<Delivery>> {
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

/// One finished attempt within a change: the attempt is recorded, and the
/// delivery (and the subscription's change, if any) updated unless it is no
/// longer pending, e.g. cancelled while the attempt ran. `true` when it was
/// still pending. A `Corrupt` error means the delivery's row is unreadable,
/// found after the attempt's own writes.
fn finish_in(c: &mut Change<'_>, f: &StagedFinish) -> Result<bool> {
    c.insert(
        Slot::Attempts,
        f.attempt_id.as_slice(),
        f.attempt.as_slice(),
    );
    c.insert(Slot::SubAttempts, f.sub_attempt_key.as_slice(), &[][..]);
    let before: Delivery = match c.get(Slot::Deliveries, &f.delivery_id)? {
        Some(raw) => decode(&f.delivery_id, &raw)?,
        None => f.found.clone(),
    };
    if let Some(due) = before.next_attempt_at {
        c.remove(Slot::Queue, queue_key(due, &before.id));
    }
    if before.state != DeliveryState::Pending {
        return Ok(false);
    }
    c.insert(
        Slot::Deliveries,
        f.delivery_id.as_slice(),
        f.delivery.as_slice(),
    );
    if let Some((key, value)) = &f.requeue {
        c.insert(Slot::Queue, key.as_slice(), value.as_slice());
    }
    if let Some(sub) = &f.subscription {
        put_subscription(c, sub);
    }
    Ok(true)
}

impl Trees {
    fn tree(&self, slot: Slot) -> &sled::Tree {
        match slot {
            Slot::Subscriptions => &self.subscriptions,
            Slot::Events => &self.events,
            Slot::SourceIds => &self.source_ids,
            Slot::Deliveries => &self.deliveries,
            Slot::EventDeliveries => &self.event_deliveries,
            Slot::Queue => &self.queue,
            Slot::SubPending => &self.sub_pending,
            Slot::Attempts => &self.attempts,
            Slot::SubAttempts => &self.sub_attempts,
            Slot::Plugins => &self.plugins,
            Slot::PluginBlobs => &self.plugin_blobs,
        }
    }

    /// Makes the change `build` describes, atomically (see [`journal`]).
    fn write<T>(&self, build: impl FnOnce(&mut Change<'_>) -> Result<T>) -> Result<T> {
        self.journal.write(self, build)
    }

    /// Writes a batch of staged records and finished attempts as one
    /// change; returns the subscription changes it wrote.
    fn commit<'f>(
        &self,
        writes: &[(Slot, Vec<u8>, Vec<u8>)],
        finishes: &'f [StagedFinish],
    ) -> Result<Vec<&'f Subscription>> {
        self.write(|c| {
            let mut changed = Vec::new();
            for f in finishes {
                match finish_in(c, f) {
                    Ok(true) => changed.extend(&f.subscription),
                    Ok(false) => {}
                    // One unreadable record must not hold up the whole batch.
                    Err(e @ StoreError::Corrupt { .. }) => {
                        tracing::error!(error = %e, "skipping an attempt's delivery update");
                    }
                    Err(e) => return Err(e),
                }
            }
            for (slot, key, value) in writes {
                c.insert(*slot, key.as_slice(), value.as_slice());
            }
            Ok(changed)
        })
    }
}

/// Group commit: writers take a ticket after writing (or staging); one
/// thread commits what is staged, flushes, and publishes the highest ticket
/// the flush covered.
struct GroupCommit {
    staged: Mutex<Staged>,
    trees: Arc<Trees>,
    index: Arc<RwLock<SubscriptionIndex>>,
    written: AtomicU64,
    /// Lowest queue key written since [`Store::take_queued_since`].
    low_water: Mutex<Option<Vec<u8>>>,
    flushed: watch::Sender<u64>,
    failed: watch::Sender<Option<String>>,
    kick: Mutex<Kick>,
    cvar: Condvar,
}

#[derive(Default)]
struct Kick {
    pending: bool,
    stop: bool,
}

/// Owns the flush thread; dropping it stops and joins the thread, so the
/// sled directory is unlocked once the last [`Store`] clone is gone.
struct Flusher {
    commit: Arc<GroupCommit>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flusher {
    fn start(db: sled::Db, trees: Arc<Trees>, index: Arc<RwLock<SubscriptionIndex>>) -> Self {
        let commit = Arc::new(GroupCommit {
            staged: Mutex::new(Staged::default()),
            trees,
            index,
            written: AtomicU64::new(0),
            low_water: Mutex::new(None),
            flushed: watch::Sender::new(0),
            failed: watch::Sender::new(None),
            kick: Mutex::new(Kick::default()),
            cvar: Condvar::new(),
        });
        let gc = commit.clone();
        let thread = std::thread::Builder::new()
            .name("hookshape-flush".into())
            .spawn(move || gc.run(db))
            .expect("spawn the flush thread");
        Flusher {
            commit,
            thread: Some(thread),
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.commit
            .kick
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stop = true;
        self.commit.cvar.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl GroupCommit {
    fn run(&self, db: sled::Db) {
        loop {
            let stop = {
                let mut kick = self.kick.lock().unwrap_or_else(|e| e.into_inner());
                while !kick.pending && !kick.stop {
                    kick = self.cvar.wait(kick).unwrap_or_else(|e| e.into_inner());
                }
                kick.pending = false;
                kick.stop
            };
            // Read before taking the batch: everything staged before a
            // ticket was taken is in this batch or an earlier one.
            let target = self.written.load(Ordering::SeqCst);
            let (writes, finishes, source_keys) = {
                let mut staged = self.lock_staged();
                (
                    std::mem::take(&mut staged.writes),
                    std::mem::take(&mut staged.finishes),
                    std::mem::take(&mut staged.source_keys),
                )
            };
            if !writes.is_empty() || !finishes.is_empty() {
                self.commit_batch(&writes, &finishes, &source_keys);
            }
            let journaled = self.trees.journal.applied();
            match db.flush() {
                Ok(_) => {
                    // Before waking the waiters, so a caller of `durable`
                    // finds the journal without what it wrote.
                    if let Err(e) = self.trees.journal.forget(journaled) {
                        tracing::error!(error = %e, "removing applied journal records failed");
                    }
                    self.failed.send_replace(None);
                    self.flushed.send_replace(target);
                }
                Err(e) => {
                    tracing::error!(error = %e, "flushing storage failed; retrying");
                    self.failed.send_replace(Some(e.to_string()));
                    std::thread::sleep(Duration::from_millis(50));
                    self.kick.lock().unwrap_or_else(|e| e.into_inner()).pending = true;
                }
            }
            if stop {
                return;
            }
        }
    }

    /// Notes a committed queue entry (or a lower bound of its key).
    fn queued(&self, key: Vec<u8>) {
        let mut low = self.lock_low_water();
        if low.as_ref().is_none_or(|l| key < *l) {
            *low = Some(key);
        }
    }

    fn lock_low_water(&self) -> std::sync::MutexGuard<'_, Option<Vec<u8>>> {
        self.low_water.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_staged(&self) -> std::sync::MutexGuard<'_, Staged> {
        self.staged.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes a staged batch, retrying until storage takes it: its events
    /// may already be promised to a waiter of a later ticket.
    fn commit_batch(
        &self,
        writes: &[(Slot, Vec<u8>, Vec<u8>)],
        finishes: &[StagedFinish],
        source_keys: &[Vec<u8>],
    ) {
        // A subscription change (failure count, disabling) must reach the
        // index no later than readers of sled can see it, or an ingest could
        // still match a subscription the API already shows disabled: hold
        // the index across the change (rarely: only batches with one).
        let mut index = finishes
            .iter()
            .any(|f| f.subscription.is_some())
            .then(|| self.index.write().unwrap_or_else(|e| e.into_inner()));
        loop {
            match self.trees.commit(writes, finishes) {
                Ok(changed) => {
                    if let Some(index) = index.as_mut() {
                        for sub in changed {
                            index.put(sub.clone());
                        }
                    }
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "writing staged events failed; retrying");
                    self.failed.send_replace(Some(e.to_string()));
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        drop(index);
        let queued = writes
            .iter()
            .filter(|(slot, ..)| matches!(slot, Slot::Queue))
            .map(|(_, key, _)| key)
            .chain(
                finishes
                    .iter()
                    .filter_map(|f| f.requeue.as_ref().map(|(k, _)| k)),
            )
            .min();
        if let Some(key) = queued {
            self.queued(key.clone());
        }
        let mut staged = self.lock_staged();
        for key in source_keys {
            staged.source_ids.remove(key);
        }
    }

    async fn wait(&self) -> Result<()> {
        let ticket = self.written.fetch_add(1, Ordering::SeqCst) + 1;
        self.kick.lock().unwrap_or_else(|e| e.into_inner()).pending = true;
        self.cvar.notify_one();
        let mut flushed = self.flushed.subscribe();
        let mut failed = self.failed.subscribe();
        loop {
            if *flushed.borrow_and_update() >= ticket {
                return Ok(());
            }
            if let Some(e) = failed.borrow_and_update().clone() {
                return Err(StoreError::Sled(sled::Error::Io(std::io::Error::other(e))));
            }
            tokio::select! {
                r = flushed.changed() => if r.is_err() { return Ok(()) },
                r = failed.changed() => if r.is_err() { return Ok(()) },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AttemptOutcome, ManagedBy};

    fn tenant() -> Tenant {
        "acme".parse().unwrap()
    }

    fn sub(id: &str, events: &[&str], ordered: bool) -> Subscription {
        Subscription {
            id: id.parse().unwrap(),
            tenant: tenant(),
            url: "https://example.com/hook".into(),
            events: events.iter().map(|s| s.to_string()).collect(),
            description: None,
            headers: Default::default(),
            enabled: true,
            disabled_reason: None,
            ordered,
            plugin: None,
            plugin_config: serde_json::Value::Null,
            secret: "whsec_x".into(),
            managed_by: ManagedBy::Api,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
            consecutive_failures: 0,
        }
    }

    fn event(source_id: Option<&str>) -> Event {
        Event {
            id: EventId::generate(),
            source_id: source_id.map(String::from),
            event_type: "project.published".into(),
            tenant: tenant(),
            timestamp: Timestamp(1000),
            content_type: "application/json".into(),
            payload: crate::model::Payload::from_value(&serde_json::json!({"a": 1})),
        }
    }

    fn delivery(e: &Event, s: &Subscription, due: u64) -> Delivery {
        Delivery {
            id: DeliveryId::generate(),
            tenant: tenant(),
            event_id: e.id.clone(),
            subscription_id: s.id.clone(),
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: Some(Timestamp(due)),
            created_at: Timestamp(due),
        }
    }

    fn attempt_for(d: &Delivery, outcome: AttemptOutcome) -> Attempt {
        Attempt {
            id: AttemptId::generate(),
            tenant: d.tenant.clone(),
            delivery_id: d.id.clone(),
            event_id: d.event_id.clone(),
            event_type: "project.published".into(),
            subscription_id: d.subscription_id.clone(),
            created_at: Timestamp(0),
            attempt: d.attempts + 1,
            outcome,
            status_code: Some(200),
            duration_ms: 1,
            request_headers: Default::default(),
            request_body: None,
            request_body_truncated: false,
            response_body: None,
            response_body_truncated: false,
            plugin_logs: vec![],
            plugin_sha256: None,
            error: None,
        }
    }

    /// The delivery as it stands, as an attempt would find it.
    fn current(store: &Store, d: &Delivery) -> Option<Delivery> {
        let queued = Queued {
            id: d.id.clone(),
            event: Some(d.event_id.clone()),
        };
        store.attempt_inputs(&queued).unwrap().map(|(d, _)| d)
    }

    impl DueWork {
        fn ids(&self) -> Vec<DeliveryId> {
            self.ready.iter().map(|q| q.id.clone()).collect()
        }
    }

    fn finish(store: &Store, d: &Delivery, state: DeliveryState, ordered: bool, now: u64) {
        let mut after = d.clone();
        after.state = state;
        after.attempts += 1;
        after.next_attempt_at = (!state.is_final()).then_some(Timestamp(now + 5000));
        let result = AttemptResult {
            attempt: attempt_for(d, AttemptOutcome::Delivered),
            delivery: after,
            subscription: None,
            found: d.clone(),
        };
        store
            .finish_attempt(&result, ordered, Timestamp(now))
            .unwrap();
    }

    #[test]
    fn opening_waits_for_the_previous_holder_of_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open(dir.path()).unwrap();
        let holder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(first);
        });
        let started = Instant::now();
        let second = Store::open(dir.path());
        holder.join().unwrap();
        assert!(second.is_ok(), "{:?}", second.err());
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn event_deliveries_are_the_ingest_ones_then_the_resends() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (s1, s2) = (sub("s1", &["*"], false), sub("s2", &["*"], true));
        store.put_subscription(&s1).unwrap();
        store.put_subscription(&s2).unwrap();
        // Staged (unordered only) and written at once (with an ordered one).
        let staged = event(None);
        let now = event(None);
        let staged_ds = [delivery(&staged, &s1, 1000), delivery(&staged, &s1, 1000)];
        let now_ds = [delivery(&now, &s2, 1000), delivery(&now, &s1, 1000)];
        store
            .ingest(&staged, &staged_ds.clone().map(|d| (d, false)))
            .unwrap();
        store
            .ingest(
                &now,
                &[(now_ds[0].clone(), true), (now_ds[1].clone(), false)],
            )
            .unwrap();
        store.durable().await.unwrap();
        assert!(
            store.inner.trees.event_deliveries.is_empty(),
            "ingest writes no index rows"
        );
        let resend = delivery(&staged, &s1, 2000);
        store.add_delivery(&resend, false).unwrap();
        let mut expected = staged_ds.to_vec();
        expected.push(resend);
        assert_eq!(store.event_deliveries(&staged.id).unwrap(), expected);
        assert_eq!(store.event_deliveries(&now.id).unwrap(), now_ds.to_vec());
        assert_eq!(store.get_event(&staged.id).unwrap(), Some(staged));

        // A fan-out too large for the record goes to the index.
        let wide = event(None);
        let wide_ds: Vec<_> = (0..=RECORD_DELIVERIES)
            .map(|_| (delivery(&wide, &s1, 1000), false))
            .collect();
        store.ingest(&wide, &wide_ds).unwrap();
        store.durable().await.unwrap();
        assert_eq!(
            store.inner.trees.event_deliveries.len(),
            RECORD_DELIVERIES + 2,
            "the resend and the wide fan-out"
        );
        let listed = store.event_deliveries(&wide.id).unwrap();
        assert_eq!(
            listed,
            wide_ds.into_iter().map(|(d, _)| d).collect::<Vec<_>>()
        );
        assert_eq!(store.get_event(&wide.id).unwrap(), Some(wide));

        // A record from before the ids were kept in it: every delivery is indexed.
        let old = event(None);
        let old_d = delivery(&old, &s1, 1000);
        let trees = &store.inner.trees;
        trees.events.insert(old.id.as_str(), encode(&old)).unwrap();
        trees
            .deliveries
            .insert(old_d.id.as_str(), encode(&old_d))
            .unwrap();
        trees
            .event_deliveries
            .insert(event_delivery_key(&old.id, &old_d.id), &[][..])
            .unwrap();
        assert_eq!(store.event_deliveries(&old.id).unwrap(), vec![old_d]);
        assert_eq!(store.get_event(&old.id).unwrap(), Some(old));
    }

    #[tokio::test]
    async fn kept_deliveries_get_rows_once_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let s1 = sub("s1", &["*"], false);
        store.put_subscription(&s1).unwrap();
        let e = event(None);
        let ds = [delivery(&e, &s1, 1000), delivery(&e, &s1, 1000)];
        store.ingest(&e, &ds.clone().map(|d| (d, false))).unwrap();
        store.durable().await.unwrap();
        let trees = &store.inner.trees;
        assert!(trees.deliveries.is_empty(), "kept in the event's record");
        let work = store.due(Timestamp(1000), 10, |_| false).unwrap();
        let expected: Vec<_> = ds
            .iter()
            .map(|d| Queued {
                id: d.id.clone(),
                event: Some(e.id.clone()),
            })
            .collect();
        assert_eq!(work.ready, expected);
        let (found, read) = store.attempt_inputs(&work.ready[0]).unwrap().unwrap();
        assert_eq!((&found, &read), (&ds[0], &e));
        assert_eq!(current(&store, &ds[1]).as_ref(), Some(&ds[1]));

        // The first attempt's end writes the row, through the batch.
        let mut after = found.clone();
        after.state = DeliveryState::Delivered;
        after.attempts = 1;
        after.next_attempt_at = None;
        let result = AttemptResult {
            attempt: attempt_for(&found, AttemptOutcome::Delivered),
            delivery: after.clone(),
            subscription: None,
            found,
        };
        store
            .record_attempt(&result, false, Timestamp(1000))
            .await
            .unwrap();
        assert_eq!(trees.deliveries.len(), 1);
        assert_eq!(current(&store, &ds[0]), Some(after.clone()));
        assert_eq!(
            store.event_deliveries(&e.id).unwrap(),
            vec![after.clone(), ds[1].clone()]
        );
        assert_eq!(
            store.due(Timestamp(1000), 10, |_| false).unwrap().ids(),
            vec![ds[1].id.clone()]
        );

        // Cancelling finds the other through its queue entry and event.
        assert_eq!(
            store
                .cancel_pending(&s1.tenant, &s1.id, Timestamp(1000))
                .unwrap(),
            1
        );
        let cancelled = current(&store, &ds[1]).unwrap();
        assert_eq!(cancelled.state, DeliveryState::Cancelled);
        assert_eq!(cancelled.next_attempt_at, None);
        assert_eq!(store.queue_len(), 0);
        assert_eq!(
            store.event_deliveries(&e.id).unwrap(),
            vec![after, cancelled]
        );
    }

    #[tokio::test]
    async fn records_and_queue_entries_from_before_still_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let s1 = sub("s1", &["*"], false);
        store.put_subscription(&s1).unwrap();
        // An event record listing its delivery's id, with the delivery in a
        // row and a queue entry naming only the subscription.
        let e = event(None);
        let d = delivery(&e, &s1, 1000);
        let mut record = serde_json::to_value(&e).unwrap();
        record["delivery_ids"] = serde_json::json!([d.id]);
        let trees = &store.inner.trees;
        trees.events.insert(e.id.as_str(), encode(&record)).unwrap();
        trees.deliveries.insert(d.id.as_str(), encode(&d)).unwrap();
        let old_value = key2(d.tenant.as_str(), d.subscription_id.as_str());
        trees
            .queue
            .insert(queue_key(Timestamp(1000), &d.id), old_value)
            .unwrap();
        assert_eq!(store.event_deliveries(&e.id).unwrap(), vec![d.clone()]);
        let work = store.due(Timestamp(1000), 10, |_| false).unwrap();
        assert_eq!(
            work.ready,
            vec![Queued {
                id: d.id.clone(),
                event: None
            }]
        );
        assert_eq!(
            store.attempt_inputs(&work.ready[0]).unwrap(),
            Some((d.clone(), e.clone()))
        );
        assert_eq!(
            store
                .cancel_pending(&s1.tenant, &s1.id, Timestamp(1000))
                .unwrap(),
            1
        );
        assert_eq!(store.queue_len(), 0);
        assert_eq!(current(&store, &d).unwrap().state, DeliveryState::Cancelled);
    }

    #[tokio::test]
    async fn ingest_is_atomic_idempotent_and_durable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let s = sub("s1", &["project.*"], false);
        store.put_subscription(&s).unwrap();
        let e = event(Some("src-1"));
        let d = delivery(&e, &s, 1000);
        let first = store.ingest(&e, &[(d.clone(), false)]).unwrap();
        assert_eq!(
            first,
            Ingested::New(Receipt {
                id: e.id.clone(),
                deliveries: 1
            })
        );
        let again = event(Some("src-1"));
        let second = store
            .ingest(&again, &[(delivery(&again, &s, 1000), false)])
            .unwrap();
        assert_eq!(
            second,
            Ingested::Duplicate(Receipt {
                id: e.id.clone(),
                deliveries: 1
            })
        );
        assert!(
            store.get_event(&again.id).unwrap().is_none(),
            "a duplicate stores nothing"
        );
        store.durable().await.unwrap();
        drop(store);

        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.get_event(&e.id).unwrap(), Some(e.clone()));
        assert_eq!(store.event_deliveries(&e.id).unwrap(), vec![d.clone()]);
        assert_eq!(
            store.due(Timestamp(1000), 10, |_| false).unwrap().ids(),
            vec![d.id]
        );
        assert_eq!(
            store
                .matching_subscriptions(&tenant(), "project.published")
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn due_respects_time_limit_and_skips() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let s = sub("s1", &["*"], false);
        let e = event(None);
        let ds: Vec<Delivery> = [300, 100, 200, 900]
            .iter()
            .map(|&t| delivery(&e, &s, t))
            .collect();
        let with_flags: Vec<_> = ds.iter().map(|d| (d.clone(), false)).collect();
        store.ingest(&e, &with_flags).unwrap();
        store.durable().await.unwrap();
        let work = store.due(Timestamp(500), 10, |_| false).unwrap();
        assert_eq!(
            work.ids(),
            vec![ds[1].id.clone(), ds[2].id.clone(), ds[0].id.clone()]
        );
        assert_eq!(work.next_due, Some(Timestamp(900)));
        let work = store.due(Timestamp(500), 1, |id| id == &ds[1].id).unwrap();
        assert_eq!(work.ids(), vec![ds[2].id.clone()]);
        assert_eq!(work.next_due, Some(Timestamp(300)));
    }

    #[tokio::test]
    async fn a_scan_from_the_lowest_queued_position_finds_what_landed_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let s = sub("s1", &["*"], false);
        let e = event(None);
        let handed: Vec<Delivery> = [100, 200].iter().map(|&t| delivery(&e, &s, t)).collect();
        let with_flags: Vec<_> = handed.iter().map(|d| (d.clone(), false)).collect();
        store.ingest(&e, &with_flags).unwrap();
        store.durable().await.unwrap();
        let cursor = store
            .due(Timestamp(1000), 10, |_| false)
            .unwrap()
            .last
            .unwrap();
        store.take_queued_since();

        // A retry due before the cursor's entry.
        let late = event(None);
        let behind = delivery(&late, &s, 150);
        store.ingest(&late, &[(behind.clone(), false)]).unwrap();
        store.durable().await.unwrap();
        let in_flight = |id: &DeliveryId| handed.iter().any(|d| &d.id == id);
        let past = store
            .due_after(Timestamp(1000), 10, Bound::Excluded(&cursor), in_flight)
            .unwrap();
        assert!(past.ready.is_empty(), "behind the cursor");
        let lowest = store.take_queued_since().unwrap();
        assert!(lowest <= cursor);
        let from = store
            .due_after(Timestamp(1000), 10, Bound::Included(&lowest), in_flight)
            .unwrap();
        assert_eq!(from.ids(), vec![behind.id]);
    }

    #[tokio::test]
    async fn the_lowest_queued_position_is_reported_once_it_is_visible() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.take_queued_since(), None);
        let s = sub("s1", &["*"], false);
        let (late, early) = (event(None), event(None));
        store
            .ingest(&late, &[(delivery(&late, &s, 500), false)])
            .unwrap();
        store
            .ingest(&early, &[(delivery(&early, &s, 300), false)])
            .unwrap();
        // Staged ingests are not in the queue yet, so nothing is reported.
        assert_eq!(store.take_queued_since(), None);
        store.durable().await.unwrap();
        let lowest = store.take_queued_since().expect("queued");
        let work = store.due(Timestamp(1000), 1, |_| false).unwrap();
        assert_eq!(Some(lowest), work.last, "the entry due at 300");
        assert_eq!(store.take_queued_since(), None, "taken once");

        let o = sub("o1", &["*"], true);
        let third = event(None);
        store
            .add_delivery(&delivery(&third, &o, 250), true)
            .unwrap();
        let lowest = store.take_queued_since().expect("queued");
        let work = store.due(Timestamp(1000), 1, |_| false).unwrap();
        assert_eq!(Some(lowest), work.last, "the entry due at 250");
    }

    #[tokio::test]
    async fn staged_ingests_are_invisible_until_durable_and_still_deduplicated() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let s = sub("s1", &["*"], false);
        let e = event(Some("src-7"));
        let d = delivery(&e, &s, 100);
        let first = store.ingest(&e, &[(d.clone(), false)]).unwrap();
        let twin = event(Some("src-7"));
        let again = store
            .ingest(&twin, &[(delivery(&twin, &s, 100), false)])
            .unwrap();
        assert_eq!(
            again,
            Ingested::Duplicate(Receipt {
                id: e.id.clone(),
                deliveries: 1
            }),
            "a duplicate of a staged event is caught before it is committed"
        );
        assert_eq!(
            first,
            Ingested::New(Receipt {
                id: e.id.clone(),
                deliveries: 1
            })
        );
        let many: Vec<Event> = (0..50).map(|_| event(None)).collect();
        for m in &many {
            store.ingest(m, &[(delivery(m, &s, 200), false)]).unwrap();
        }
        store.durable().await.unwrap();
        assert_eq!(store.get_event(&e.id).unwrap(), Some(e.clone()));
        assert!(store.get_event(&twin.id).unwrap().is_none());
        assert_eq!(
            store
                .due(Timestamp(200), 100, |_| false)
                .unwrap()
                .ready
                .len(),
            51
        );
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.event_deliveries(&many[49].id).unwrap().len(), 1);
    }

    #[test]
    fn index_changes_touch_only_the_changed_subscription() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for k in 0..2000 {
            store
                .put_subscription(&sub(&format!("s{k}"), &[&format!("t.{k}")], false))
                .unwrap();
        }
        let ids = |t: &str| -> Vec<String> {
            store
                .matching_subscriptions(&tenant(), t)
                .iter()
                .map(|s| s.id.to_string())
                .collect()
        };
        assert_eq!(ids("t.1999"), ["s1999"]);
        store
            .put_subscription(&sub("s5", &["t.other", "u.*"], false))
            .unwrap();
        assert!(ids("t.5").is_empty(), "the old event type is forgotten");
        assert_eq!(ids("t.other"), ["s5"]);
        assert_eq!(ids("u.7"), ["s5"]);
        assert_eq!(ids("t.7"), ["s7"]);
        let mut off = sub("s7", &["t.7"], false);
        off.enabled = false;
        store.put_subscription(&off).unwrap();
        assert!(ids("t.7").is_empty());
    }

    #[test]
    fn ordered_subscriptions_queue_one_head_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let s = sub("ordered", &["*"], true);
        store.put_subscription(&s).unwrap();
        let mut ds = Vec::new();
        for _ in 0..3 {
            let e = event(None);
            let d = delivery(&e, &s, 100);
            store.ingest(&e, &[(d.clone(), true)]).unwrap();
            ds.push(d);
        }
        assert_eq!(
            store.due(Timestamp(100), 10, |_| false).unwrap().ids(),
            vec![ds[0].id.clone()]
        );
        // A retry keeps the head; nothing else is released.
        finish(&store, &ds[0], DeliveryState::Pending, true, 100);
        assert!(
            store
                .due(Timestamp(200), 10, |_| false)
                .unwrap()
                .ready
                .is_empty()
        );
        finish(&store, &ds[0], DeliveryState::Failed, true, 200);
        assert_eq!(
            store.due(Timestamp(200), 10, |_| false).unwrap().ids(),
            vec![ds[1].id.clone()]
        );
        finish(&store, &ds[1], DeliveryState::Delivered, true, 300);
        assert_eq!(
            store.due(Timestamp(300), 10, |_| false).unwrap().ids(),
            vec![ds[2].id.clone()]
        );
    }

    #[tokio::test]
    async fn cancelling_an_unordered_subscription_finds_its_deliveries_in_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (s1, s2) = (sub("s1", &["*"], false), sub("s2", &["*"], false));
        store.put_subscription(&s1).unwrap();
        store.put_subscription(&s2).unwrap();
        let mut mine = Vec::new();
        let mut theirs = Vec::new();
        // More than one change's worth, some retrying later, one done.
        for n in 0..(CHANGE_CHUNK as u64 + 20) {
            let e = event(None);
            let (d1, d2) = (delivery(&e, &s1, 100 + n), delivery(&e, &s2, 100));
            store
                .ingest(&e, &[(d1.clone(), false), (d2.clone(), false)])
                .unwrap();
            mine.push(d1);
            theirs.push(d2);
        }
        store.durable().await.unwrap();
        assert_eq!(
            store.inner.trees.sub_pending.len(),
            0,
            "unordered: queue only"
        );
        finish(&store, &mine[0], DeliveryState::Delivered, false, 100);
        finish(&store, &mine[1], DeliveryState::Pending, false, 100);
        let cancelled = store
            .cancel_pending(&tenant(), &s1.id, Timestamp(0))
            .unwrap();
        assert_eq!(cancelled, mine.len() - 1);
        let state = |d: &Delivery| current(&store, d).unwrap().state;
        assert_eq!(state(&mine[0]), DeliveryState::Delivered);
        assert!(
            mine[1..]
                .iter()
                .all(|d| state(d) == DeliveryState::Cancelled)
        );
        assert!(theirs.iter().all(|d| state(d) == DeliveryState::Pending));
        let due = store
            .due(Timestamp(u64::MAX), 1000, |_| false)
            .unwrap()
            .ids();
        let expected: Vec<_> = theirs.iter().map(|d| d.id.clone()).collect();
        assert_eq!(due, expected);
    }

    #[tokio::test]
    async fn turning_ordering_off_releases_the_waiting_deliveries() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut s = sub("s1", &["*"], true);
        store.put_subscription(&s).unwrap();
        let ds: Vec<_> = (0..3)
            .map(|_| {
                let e = event(None);
                let d = delivery(&e, &s, 100);
                store.ingest(&e, &[(d.clone(), true)]).unwrap();
                d
            })
            .collect();
        let ids = |n: usize| ds[..n].iter().map(|d| d.id.clone()).collect::<Vec<_>>();
        assert_eq!(
            store.due(Timestamp(100), 10, |_| false).unwrap().ids(),
            ids(1)
        );
        s.ordered = false;
        store.put_subscription(&s).unwrap();
        store.durable().await.unwrap();
        assert_eq!(
            store.due(Timestamp(100), 10, |_| false).unwrap().ids(),
            ids(3)
        );
        assert_eq!(store.inner.trees.sub_pending.len(), 0);
        // The next scan from a later position still finds them.
        assert!(store.take_queued_since().is_some());
        finish(&store, &ds[1], DeliveryState::Delivered, false, 100);
        assert_eq!(
            store.due(Timestamp(100), 10, |_| false).unwrap().ids(),
            vec![ds[0].id.clone(), ds[2].id.clone()]
        );
    }

    #[tokio::test]
    async fn cancelling_clears_the_queue_and_keeps_late_attempts_from_reviving() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let s = sub("s1", &["*"], false);
        store.put_subscription(&s).unwrap();
        let e = event(None);
        let d = delivery(&e, &s, 100);
        store.ingest(&e, &[(d.clone(), false)]).unwrap();
        store.durable().await.unwrap();
        assert_eq!(
            store
                .cancel_pending(&tenant(), &s.id, Timestamp(100))
                .unwrap(),
            1
        );
        assert!(
            store
                .due(Timestamp(100), 10, |_| false)
                .unwrap()
                .ready
                .is_empty()
        );
        finish(&store, &d, DeliveryState::Pending, false, 150);
        let after = current(&store, &d).unwrap();
        assert_eq!(after.state, DeliveryState::Cancelled);
        assert!(
            store
                .due(Timestamp(u64::MAX), 10, |_| false)
                .unwrap()
                .ready
                .is_empty()
        );
        assert_eq!(
            store
                .list_attempts(&tenant(), &s.id, 10, None)
                .unwrap()
                .attempts
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn attempts_page_newest_first_with_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let s = sub("s1", &["*"], false);
        let e = event(None);
        let d = delivery(&e, &s, 100);
        store.ingest(&e, &[(d.clone(), false)]).unwrap();
        store.durable().await.unwrap();
        for _ in 0..5 {
            finish(&store, &d, DeliveryState::Pending, false, 100);
        }
        let page1 = store.list_attempts(&tenant(), &s.id, 2, None).unwrap();
        assert_eq!(page1.attempts.len(), 2);
        assert!(page1.attempts[0].id > page1.attempts[1].id);
        let page2 = store
            .list_attempts(&tenant(), &s.id, 2, page1.next.as_ref())
            .unwrap();
        let page3 = store
            .list_attempts(&tenant(), &s.id, 2, page2.next.as_ref())
            .unwrap();
        assert_eq!(page3.attempts.len(), 1);
        assert_eq!(page3.next, None);
        assert!(page2.attempts[0].id < page1.attempts[1].id);
    }

    #[tokio::test]
    async fn a_change_left_in_the_journal_is_applied_when_the_store_opens() {
        let dir = tempfile::tempdir().unwrap();
        let kept = sub("kept", &["*"], false);
        let key = key2(kept.tenant.as_str(), kept.id.as_str());
        {
            let store = Store::open(dir.path()).unwrap();
            let trees = &*store.inner.trees;
            // Two changes journaled, neither applied (a crash in between):
            // the second one's removal must win over the first's insert.
            trees
                .journal
                .record_only(trees, |c| {
                    c.insert(Slot::Subscriptions, key.as_slice(), encode(&kept));
                    c.insert(
                        Slot::Subscriptions,
                        b"acme\0gone".as_slice(),
                        b"{}".as_slice(),
                    );
                    c.insert(
                        Slot::Queue,
                        queue_key(Timestamp(5), &DeliveryId::generate()),
                        b"x".as_slice(),
                    );
                })
                .unwrap();
            trees
                .journal
                .record_only(trees, |c| {
                    c.remove(Slot::Subscriptions, b"acme\0gone".as_slice())
                })
                .unwrap();
            assert_eq!(store.queue_len(), 0);
            store.durable().await.unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.get_subscription(&tenant(), &kept.id).unwrap(),
            Some(kept.clone())
        );
        assert!(
            store
                .inner
                .trees
                .subscriptions
                .get(b"acme\0gone")
                .unwrap()
                .is_none()
        );
        assert_eq!(store.queue_len(), 1);
        // Read into the index too, as anything stored before the start is.
        assert!(store.current_subscription(&tenant(), &kept.id).is_some());
        // Dropped once a flush covers what they wrote; new changes go on.
        assert_eq!(store.inner.trees.journal.len(), 2);
        store.durable().await.unwrap();
        assert_eq!(store.inner.trees.journal.len(), 0);
        store.put_subscription(&sub("next", &["*"], false)).unwrap();
        store.durable().await.unwrap();
        assert_eq!(store.inner.trees.journal.len(), 0);
        assert_eq!(store.list_subscriptions(&tenant()).unwrap().len(), 2);
    }

    #[test]
    fn a_change_reads_its_own_writes_and_a_failed_one_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let trees = &*store.inner.trees;
        trees.events.insert(b"before", b"old".as_slice()).unwrap();
        trees
            .write(|c| {
                assert_eq!(c.get(Slot::Events, b"before")?.unwrap(), b"old");
                c.insert(Slot::Events, b"before".as_slice(), b"new".as_slice());
                assert_eq!(c.get(Slot::Events, b"before")?.unwrap(), b"new");
                c.remove(Slot::Events, b"before".as_slice());
                assert!(c.get(Slot::Events, b"before")?.is_none());
                // Same key, another tree: untouched.
                assert!(c.get(Slot::Deliveries, b"before")?.is_none());
                c.insert(Slot::Events, b"after".as_slice(), b"1".as_slice());
                Ok(())
            })
            .unwrap();
        assert!(trees.events.get(b"before").unwrap().is_none());
        assert_eq!(trees.events.get(b"after").unwrap().unwrap(), b"1");
        let failed: Result<()> = trees.write(|c| {
            c.insert(Slot::Events, b"never".as_slice(), b"1".as_slice());
            Err(StoreError::Journal("the change gives up".into()))
        });
        assert!(failed.is_err());
        assert!(trees.events.get(b"never").unwrap().is_none());
        assert_eq!(trees.journal.len(), 1);
    }

    #[test]
    fn index_matches_exact_and_patterns_and_ignores_disabled() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .put_subscription(&sub("a", &["project.published"], false))
            .unwrap();
        store
            .put_subscription(&sub("b", &["project.*", "project.published"], false))
            .unwrap();
        store.put_subscription(&sub("c", &["*"], false)).unwrap();
        let mut off = sub("d", &["*"], false);
        off.enabled = false;
        store.put_subscription(&off).unwrap();
        let ids = |t: &str| {
            let mut v: Vec<String> = store
                .matching_subscriptions(&tenant(), t)
                .iter()
                .map(|s| s.id.to_string())
                .collect();
            v.sort();
            v
        };
        assert_eq!(ids("project.published"), ["a", "b", "c"]);
        assert_eq!(ids("project.deleted"), ["b", "c"]);
        assert_eq!(ids("other"), ["c"]);
        store
            .delete_subscription(&tenant(), &"c".parse().unwrap(), Timestamp(0))
            .unwrap();
        assert_eq!(ids("other"), Vec::<String>::new());
    }
}
