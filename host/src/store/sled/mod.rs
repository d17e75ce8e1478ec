//! The embedded backend: every record in sled, in one directory.
//!
//! Trees and key encodings (`\0` separates parts; ids never contain it, and
//! tenants and subscription ids are validated slugs):
//!
//! | tree | key | value |
//! | --- | --- | --- |
//! | `subscriptions` | `tenant \0 sub_id` | JSON [`Subscription`] |
//! | `events` | `evt_id` | JSON [`Event`], with `deliveries`: the deliveries made at ingest as they were made, when there are at most [`records::RECORD_DELIVERIES`] |
//! | `source_ids` | `tenant \0 source id` | JSON [`Receipt`] of the first ingest |
//! | `deliveries` | `dlv_id` | JSON [`Delivery`]: every delivery once it has changed, and from the start those not in their event's record |
//! | `event_deliveries` | `evt_id \0 dlv_id` | empty: the deliveries not in the event's record (resends, large fan-outs) |
//! | `queue` | `due ms (u64 big-endian) dlv_id` | `tenant \0 sub_id \0 evt_id`: runnable pending deliveries, earliest first |
//! | `sub_pending` | `tenant \0 sub_id \0 dlv_id` | empty: every pending delivery of an `ordered` subscription, in ingest order |
//! | `attempts` | `att_id` | JSON [`Attempt`] |
//! | `sub_attempts` | `tenant \0 sub_id \0 att_id` | empty: per-subscription listing, by time |
//! | `plugins` | `name` | JSON [`PluginRecord`] |
//! | `plugin_blobs` | `sha256 hex` | the component bytes |
//! | `journal` | record number (u64 big-endian) | a change whose writes a flush has not yet covered (see [`journal`]) |
//! | `meta` | `live_bytes` | the store's size as `storage.max_size` counts it (see [`usage`]) |
//!
//! Every change (ingest, finishing an attempt, cancelling, a subscription
//! written) goes through the [`journal`]: atomic across the trees it
//! touches, so a crash leaves either all of it or none, without sled
//! transactions and the store-wide lock they bring. Durability is explicit:
//! [`SledStore::durable`] waits for a flush that covers every write made
//! before the call, and concurrent callers share one flush (group commit,
//! [`commit`]) instead of paying one each.
//!
//! Ingests are also batched: every change costs a journal record and sled
//! seals its log buffer at every flush, so one change per event would cost
//! several disk writes each. [`SledStore::ingest`] checks for a duplicate and
//! stages the encoded records; the commit thread writes everything staged
//! as one change just before its next flush. A staged event is therefore
//! visible to readers only once [`SledStore::durable`] has returned, which is
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

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{
    AttemptResult, AttemptSlice, Claimed, Cutoffs, Durability, Ingested, NewDelivery, Options,
    PluginRecord, Queued, ReconcileLock, Release, Result, Store, StoreError, Swept,
};
use crate::clock::Timestamp;
use crate::ids::{AttemptId, DeliveryId, EventId, SubscriptionId, Tenant};
use crate::model::{Attempt, Delivery, Event, Subscription};

mod attempts;
mod commit;
mod events;

mod journal;
mod keys;
mod plugins;
mod queue;
mod records;
mod retention;
mod schedule;
mod space;
mod subscriptions;
mod sync;
#[cfg(test)]
mod tests;
mod usage;

use super::index::SubscriptionIndex;
use commit::{Flusher, Trees};
use retention::SweepCursor;
use space::Space;
use sync::DiskSync;

impl From<::sled::Error> for StoreError {
    fn from(e: ::sled::Error) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

/// sled's page cache size. The hot pages (the queue head, the newest
/// events, deliveries and attempts) fit in a few MiB; pages past it are
/// read back from the OS page cache. In the dispatch benchmark 32 -> 8 MiB
/// took peak RSS down by 20-25 MiB with throughput within run-to-run noise.
const CACHE_BYTES: u64 = 8 << 20;

/// How long opening waits for the data directory's lock (see [`open_db`]).
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// How long [`SledStore::durable`] waits for its flush before answering
/// that the store stalled: far above a healthy flush (under 1 ms to a few
/// ms with fsync), short enough that a client is told to retry instead of
/// waiting on a disk that has stopped answering.
const DURABLE_DEADLINE: Duration = Duration::from_secs(10);

/// The sled backend; clones share one database.
#[derive(Clone)]
pub struct SledStore {
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
    /// The storage limits and the last measure against them.
    space: Space,
    /// Where the retention sweep's current pass stands.
    sweep: Mutex<SweepCursor>,
    commit: Flusher,
}

/// Opens sled, waiting up to [`LOCK_WAIT`] for its file lock.
///
/// sled's I/O threads hold the lock until their last queued write is done,
/// a moment after the last handle of a closed `Db` is dropped. Opening the
/// directory again right away (a restart in the same process, or a new
/// process while the old one exits) would otherwise fail at random.
fn open_db(path: &Path) -> Result<::sled::Db> {
    let config = ::sled::Config::new()
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
            Err(::sled::Error::Io(e))
                if e.to_string().starts_with("could not acquire lock")
                    && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(LOCK_WAIT / 100);
            }
            opened => return Ok(opened?),
        }
    }
}

impl SledStore {
    /// Opens (or creates) the store in `path` and replays its journal.
    pub fn open(path: &Path, options: &Options) -> Result<Self> {
        let db = open_db(path)?;
        let trees = Arc::new(Trees::open(&db)?);
        usage::load(&trees)?;
        trees.journal.replay(&trees)?;
        queue::load(&trees)?;
        let disk = match options.sync {
            Durability::Full => {
                Some(DiskSync::open(path).map_err(|e| StoreError::Backend(Box::new(e)))?)
            }
            Durability::Os => None,
        };
        let index = Arc::new(RwLock::new(SubscriptionIndex::default()));
        let inner = Inner {
            trees: trees.clone(),
            index: index.clone(),
            ordered: Mutex::new(()),
            space: Space::new(trees.clone(), path, options),
            sweep: Mutex::new(SweepCursor::default()),
            commit: Flusher::start(db, trees, index, disk),
        };
        let store = SledStore {
            inner: Arc::new(inner),
        };
        let all = store.all_subscriptions()?;
        store.index_write().rebuild(all);
        Ok(store)
    }

    /// Waits until everything written before this call is on disk (see
    /// [`sync`] for what "on disk" means with each sync mode).
    pub async fn durable(&self) -> Result<()> {
        tokio::time::timeout(DURABLE_DEADLINE, self.inner.commit.commit.wait())
            .await
            .unwrap_or(Err(StoreError::Stalled(DURABLE_DEADLINE)))
    }

    /// See [`Store::readiness`].
    pub fn readiness(&self) -> Result<()> {
        self.inner.space.check()?;
        self.inner.commit.commit.check_backlog()
    }

    /// See [`Store::matching_subscriptions`]: sled's index is always current.
    pub fn matching_subscriptions(
        &self,
        tenant: &Tenant,
        event_type: &str,
    ) -> Vec<Arc<Subscription>> {
        self.index_read().matching(tenant, event_type)
    }

    fn index_read(&self) -> RwLockReadGuard<'_, SubscriptionIndex> {
        self.inner.index.read()
    }

    fn index_write(&self) -> RwLockWriteGuard<'_, SubscriptionIndex> {
        self.inner.index.write()
    }

    fn ordered_lock(&self) -> MutexGuard<'_, ()> {
        self.inner.ordered.lock()
    }
}

/// The contract's operations, on the inherent methods of the topic modules
/// (synchronous: sled's reads and writes do not block on the disk; only
/// [`SledStore::durable`] waits).
#[async_trait]
impl Store for SledStore {
    async fn durable(&self) -> Result<()> {
        SledStore::durable(self).await
    }

    fn readiness(&self) -> Result<()> {
        SledStore::readiness(self)
    }

    async fn put_subscription(&self, sub: &Subscription) -> Result<()> {
        SledStore::put_subscription(self, sub)
    }

    async fn get_subscription(
        &self,
        tenant: &Tenant,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>> {
        SledStore::get_subscription(self, tenant, id)
    }

    async fn list_subscriptions(&self, tenant: &Tenant) -> Result<Vec<Subscription>> {
        SledStore::list_subscriptions(self, tenant)
    }

    async fn all_subscriptions(&self) -> Result<Vec<Subscription>> {
        SledStore::all_subscriptions(self)
    }

    async fn delete_subscription(&self, tenant: &Tenant, id: &SubscriptionId) -> Result<bool> {
        SledStore::delete_subscription(self, tenant, id)
    }

    async fn cancel_pending(&self, tenant: &Tenant, id: &SubscriptionId) -> Result<usize> {
        SledStore::cancel_pending(self, tenant, id)
    }

    fn current_subscription(
        &self,
        tenant: &Tenant,
        id: &SubscriptionId,
    ) -> Option<Arc<Subscription>> {
        self.index_read().get(tenant, id)
    }

    async fn matching_subscriptions(
        &self,
        tenant: &Tenant,
        event_type: &str,
    ) -> Result<Vec<Arc<Subscription>>> {
        Ok(SledStore::matching_subscriptions(self, tenant, event_type))
    }

    async fn reconcile_lock(&self) -> Result<ReconcileLock> {
        Ok(ReconcileLock::alone())
    }

    /// Only this process writes: its own ingests wake its dispatcher.
    fn wake_on_remote_work(&self, _dispatcher: Arc<tokio::sync::Notify>) {}

    async fn ingest(&self, event: &Event, deliveries: &[NewDelivery]) -> Result<Ingested> {
        SledStore::ingest(self, event, deliveries)
    }

    async fn get_event(&self, id: &EventId) -> Result<Option<Event>> {
        SledStore::get_event(self, id)
    }

    async fn event_deliveries(&self, id: &EventId) -> Result<Vec<Delivery>> {
        SledStore::event_deliveries(self, id)
    }

    async fn add_delivery(&self, d: &Delivery, ordered: bool) -> Result<()> {
        SledStore::add_delivery(self, d, ordered)
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        limit: usize,
        per_subscription: usize,
    ) -> Result<Claimed> {
        SledStore::claim_due(self, now, limit, per_subscription)
    }

    fn release(&self, id: &DeliveryId, how: Release) {
        SledStore::release(self, id, how)
    }

    async fn attempt_inputs(&self, queued: &Queued) -> Result<Option<(Delivery, Event)>> {
        SledStore::attempt_inputs(self, queued)
    }

    async fn record_attempt(
        &self,
        result: &AttemptResult,
        ordered: bool,
        now: Timestamp,
    ) -> Result<()> {
        SledStore::record_attempt(self, result, ordered, now).await
    }

    fn queue_len(&self) -> usize {
        self.inner.trees.schedule.lock().len()
    }

    async fn get_attempt(&self, id: &AttemptId) -> Result<Option<Attempt>> {
        SledStore::get_attempt(self, id)
    }

    async fn list_attempts(
        &self,
        tenant: &Tenant,
        sub: &SubscriptionId,
        limit: usize,
        before: Option<&AttemptId>,
    ) -> Result<AttemptSlice> {
        SledStore::list_attempts(self, tenant, sub, limit, before)
    }

    async fn put_plugin(&self, record: &PluginRecord, wasm: &[u8]) -> Result<()> {
        SledStore::put_plugin(self, record, wasm)
    }

    async fn list_plugins(&self) -> Result<Vec<PluginRecord>> {
        SledStore::list_plugins(self)
    }

    async fn plugin_blob(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        SledStore::plugin_blob(self, sha256)
    }

    async fn sweep(&self, cutoffs: &Cutoffs, budget: usize) -> Result<Swept> {
        SledStore::sweep(self, cutoffs, budget)
    }
}
