//! The storage seam: the one [`Store`] the app and the dispatcher use, and
//! the records that cross it. A backend is picked once, at start
//! ([`open`]); no code above this module asks which one it got.
//!
//! Backends: [`sled`] (embedded, the default) and [`postgres`] (several
//! nodes on one database). Each implements the contract written on
//! [`Store`] and passes the same end-to-end suite.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::{AttemptId, DeliveryId, EventId, PluginName, SubscriptionId, Tenant};
use crate::model::{Attempt, Delivery, Event, Subscription};

mod index;
pub mod postgres;
pub mod sled;

/// What a backend failed at.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend itself failed (I/O, the database refused).
    #[error("storage error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored record does not decode.
    #[error("stored record {key} is unreadable: {source}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// Why it does not decode.
        source: serde_json::Error,
    },
    /// A change could not be made whole (see the backend's atomicity).
    #[error("storage journal: {0}")]
    Journal(String),
    /// Writes come in faster than the disk takes them: retry shortly.
    #[error("the store's backlog of unflushed writes is past its bound")]
    Overloaded,
    /// A write was not confirmed durable in time: retry shortly.
    #[error("the store did not confirm the write within {0:?}")]
    Stalled(std::time::Duration),
    /// A storage limit is reached (`storage.max_size`, `storage.min_free`).
    #[error("storage is full: {0}")]
    Full(String),
    /// The store is shutting down or its writer has stopped.
    #[error("the store is closed")]
    Closed,
}

/// The result of a store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What an acknowledged write survives (`storage.sync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Synced to the disk (`fsync`/`fdatasync`) before [`Store::durable`]
    /// returns: survives power loss and kernel crashes.
    #[default]
    Full,
    /// Handed to the operating system only: survives the process dying
    /// (`kill -9`), not the machine.
    Os,
}

/// The store everything above this module shares.
pub type SharedStore = Arc<dyn Store>;

/// How a store is opened (`[storage]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// What an acknowledged write survives.
    pub sync: Durability,
    /// Store size in bytes past which ingest is refused ([`StoreError::Full`]).
    pub max_size: u64,
    /// Free bytes on the data filesystem under which ingest is refused.
    pub min_free: u64,
}

impl Default for Options {
    /// Synced, with no storage limit: what tests and tools open.
    fn default() -> Self {
        Options {
            sync: Durability::Full,
            max_size: u64::MAX,
            min_free: 0,
        }
    }
}

/// Which backend keeps the records (`storage.backend`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Backend {
    /// Embedded sled in `storage.path`.
    #[default]
    Sled,
    /// A PostgreSQL database that any number of nodes share.
    Postgres(postgres::Settings),
}

/// Opens the store `backend` names; `path` is sled's directory (with
/// PostgreSQL it only holds local caches and is not opened here).
pub async fn open(backend: &Backend, path: &Path, options: &Options) -> Result<SharedStore> {
    Ok(match backend {
        Backend::Sled => Arc::new(sled::SledStore::open(path, options)?),
        Backend::Postgres(settings) => Arc::new(postgres::PgStore::open(settings).await?),
    })
}

/// Held while a node reconciles its config's subscriptions
/// ([`Store::reconcile_lock`]); dropping it lets the next node in.
pub struct ReconcileLock {
    _held: Option<Box<dyn Send + Sync>>,
}

impl ReconcileLock {
    /// A lock that holds nothing: one node is alone with its store.
    pub fn alone() -> Self {
        ReconcileLock { _held: None }
    }

    /// A lock that lasts as long as `held` (e.g. a database session).
    pub fn holding(held: impl Send + Sync + 'static) -> Self {
        ReconcileLock {
            _held: Some(Box::new(held)),
        }
    }
}

/// The answer given to a source for an ingested event; repeated for a duplicate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The event's id.
    pub id: EventId,
    /// How many deliveries it fanned out to.
    pub deliveries: usize,
}

/// What ingesting did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// The event was stored.
    New(Receipt),
    /// The tenant already had an event with this source id: its first receipt.
    Duplicate(Receipt),
}

/// A delivery made at ingest, and whether its subscription is `ordered`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// The delivery, pending.
    pub delivery: Delivery,
    /// Its subscription is `ordered`: it waits behind earlier deliveries.
    pub ordered: bool,
}

/// Where an uploaded or configured plugin came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PluginSource {
    /// Declared in the config file.
    Config,
    /// Uploaded through the API.
    Api,
}

/// A named plugin version uploaded through the API, with its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRecord {
    /// The plugin's name.
    pub name: PluginName,
    /// The component's SHA-256, lowercase hex; its bytes are kept under it.
    pub sha256: String,
    /// The component's size in bytes.
    pub size: usize,
    /// When it was uploaded.
    pub updated_at: Timestamp,
    /// Per-call timeout in milliseconds.
    pub timeout_ms: u64,
    /// Linear memory cap in bytes.
    pub memory_bytes: u64,
}

/// Everything that changes when an attempt ends, written at once.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    /// The attempt to record.
    pub attempt: Attempt,
    /// The delivery after the attempt: still pending with a new due time, or final.
    pub delivery: Delivery,
    /// The subscription, when the attempt changed it (failure count, disabling).
    pub subscription: Option<Subscription>,
    /// The delivery as the attempt found it (from [`Store::attempt_inputs`]):
    /// a backend that keeps unchanged deliveries inside their event's record
    /// reads the state before the attempt from here.
    pub found: Delivery,
}

/// A page of attempts, newest first, and the cursor for the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptSlice {
    /// The page's attempts.
    pub attempts: Vec<Attempt>,
    /// The cursor for the next page; `None` on the last.
    pub next: Option<AttemptId>,
}

/// A runnable delivery handed out by [`Store::claim_due`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The delivery to attempt.
    pub id: DeliveryId,
    /// Its event, when the queue entry names it (it saves a lookup).
    pub event: Option<EventId>,
}

/// What [`Store::claim_due`] handed out.
#[derive(Debug, Default, PartialEq)]
pub struct Claimed {
    /// Due deliveries, earliest first, now claimed by the caller.
    pub ready: Vec<Queued>,
    /// When the earliest entry not handed out falls due, if any.
    pub next_due: Option<Timestamp>,
}

/// How a claim ends ([`Store::release`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The attempt was recorded, or there was nothing to do.
    Done,
    /// The attempt could not be recorded: the delivery is still queued and
    /// must be handed out again.
    Unrecorded,
}

/// What a retention sweep may delete: records older than these times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// Final events (no delivery pending) ingested before this go, with
    /// their deliveries.
    pub events_before: Timestamp,
    /// Attempts made before this go.
    pub attempts_before: Timestamp,
}

/// What one [`Store::sweep`] call deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Events deleted.
    pub events: u64,
    /// Deliveries deleted.
    pub deliveries: u64,
    /// Attempts deleted.
    pub attempts: u64,
    /// Uploaded component bytes deleted, no longer referenced.
    pub plugin_blobs: u64,
    /// Nothing more is due now: the sweep can rest until its next interval.
    pub done: bool,
}

impl std::ops::AddAssign for Swept {
    fn add_assign(&mut self, other: Swept) {
        self.events += other.events;
        self.deliveries += other.deliveries;
        self.attempts += other.attempts;
        self.plugin_blobs += other.plugin_blobs;
        self.done = other.done;
    }
}

/// The storage contract. Every backend keeps these promises; the tests of
/// the store, the app and the e2e suite check them.
///
/// **Durability.** A write is *made* when its method returns and *durable*
/// once [`Store::durable`], called after it, returns `Ok`: then it survives
/// a crash of the process (and, per the backend's sync setting, of the
/// machine). Nothing may be acknowledged to a client before that. Callers
/// share one flush (group commit), so `durable` is cheap under load.
///
/// **Atomicity.** Each method that writes is all-or-nothing across every
/// record it touches, after a crash included: an ingest stores the event,
/// its source id and all its deliveries, or none of them; recording an
/// attempt writes the attempt, the delivery's new state, its queue entry
/// and the subscription's change together.
///
/// **Visibility.** An ingested event may stay invisible to readers until
/// `durable` has returned (it may be batched); every other write is visible
/// to reads once its method returns.
///
/// **The due-time queue.** Every pending delivery that may run is queued at
/// its `next_attempt_at`. [`Store::claim_due`] hands out due ones earliest
/// first, each to one caller at a time: a claimed delivery is not handed out
/// again until [`Store::release`]d (or, on a backend shared by several
/// nodes, until its lease runs out). A delivery stays queued until its
/// attempt is recorded, so after a crash it runs again: delivery is at least
/// once. An `ordered` subscription has at most one delivery queued (its
/// head, the oldest pending one by ingest order); the next is queued when
/// the head ends.
#[async_trait]
pub trait Store: Send + Sync {
    /// Waits until every write made before this call is durable; an error
    /// (never a hang) when that is not confirmed within a deadline.
    async fn durable(&self) -> Result<()>;
    /// Whether ingest is taken now: `Err` with the reason
    /// ([`StoreError::Full`], [`StoreError::Overloaded`], ...) when not.
    /// Cheap: limits are measured at most about once a second.
    fn readiness(&self) -> Result<()>;

    /// Creates or replaces a subscription; one that stops being ordered
    /// releases whatever still waits behind its head.
    async fn put_subscription(&self, sub: &Subscription) -> Result<()>;
    /// The tenant's subscription with this id, if any.
    async fn get_subscription(
        &self,
        tenant: &Tenant,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>>;
    /// The tenant's subscriptions.
    async fn list_subscriptions(&self, tenant: &Tenant) -> Result<Vec<Subscription>>;
    /// Every tenant's subscriptions.
    async fn all_subscriptions(&self) -> Result<Vec<Subscription>>;
    /// Removes a subscription and cancels its pending deliveries; `false`
    /// when there was none.
    async fn delete_subscription(&self, tenant: &Tenant, id: &SubscriptionId) -> Result<bool>;
    /// Marks every pending delivery of the subscription `cancelled`; returns
    /// how many.
    async fn cancel_pending(&self, tenant: &Tenant, id: &SubscriptionId) -> Result<usize>;
    /// The subscription as of its last change, from memory: what an attempt
    /// runs with, without a read per delivery.
    fn current_subscription(
        &self,
        tenant: &Tenant,
        id: &SubscriptionId,
    ) -> Option<Arc<Subscription>>;
    /// The tenant's enabled subscriptions that want this event type, from
    /// memory; a backend shared by several nodes first makes sure its copy
    /// holds every change committed before the call (a version check).
    async fn matching_subscriptions(
        &self,
        tenant: &Tenant,
        event_type: &str,
    ) -> Result<Vec<Arc<Subscription>>>;
    /// Taken around reconciling the config's subscriptions at start, so that
    /// nodes starting at once on a shared backend do it one after another
    /// (each sees what the one before wrote, e.g. a generated secret).
    async fn reconcile_lock(&self) -> Result<ReconcileLock>;
    /// Asks the backend to wake `dispatcher` when work may have been queued
    /// elsewhere (another node's ingest); a backend with one writer has
    /// nothing to do.
    fn wake_on_remote_work(&self, dispatcher: Arc<tokio::sync::Notify>);

    /// Stores an event and its deliveries (queued at their due times),
    /// unless the tenant already has an event with the same source id.
    async fn ingest(&self, event: &Event, deliveries: &[NewDelivery]) -> Result<Ingested>;
    /// The event with this id, if any.
    async fn get_event(&self, id: &EventId) -> Result<Option<Event>>;
    /// The event's deliveries as they stand: those made at ingest in ingest
    /// order, then later ones (resends) oldest first.
    async fn event_deliveries(&self, id: &EventId) -> Result<Vec<Delivery>>;
    /// Adds one more delivery of a stored event (a resend), queued at its due time.
    async fn add_delivery(&self, d: &Delivery, ordered: bool) -> Result<()>;

    /// Claims up to `limit` deliveries due at `now`, earliest first.
    /// No more than `per_subscription` deliveries of one subscription are
    /// claimed at once, so one slow receiver cannot hold every slot.
    async fn claim_due(
        &self,
        now: Timestamp,
        limit: usize,
        per_subscription: usize,
    ) -> Result<Claimed>;
    /// Ends a claim made by [`Store::claim_due`].
    fn release(&self, id: &DeliveryId, how: Release);
    /// What an attempt of a claimed delivery starts from: the delivery as it
    /// stands and its event; `None` if either is gone.
    async fn attempt_inputs(&self, queued: &Queued) -> Result<Option<(Delivery, Event)>>;
    /// Records an attempt and its consequences, durably. A delivery
    /// cancelled while the attempt ran keeps its state (the attempt is still
    /// recorded); when an `ordered` subscription's delivery ends, its next
    /// pending one is queued at `now`.
    async fn record_attempt(
        &self,
        result: &AttemptResult,
        ordered: bool,
        now: Timestamp,
    ) -> Result<()>;
    /// Number of queued deliveries (the queue-depth gauge); cheap.
    fn queue_len(&self) -> usize;

    /// The attempt with this id, if any.
    async fn get_attempt(&self, id: &AttemptId) -> Result<Option<Attempt>>;
    /// The subscription's attempts, newest first, strictly older than `before`.
    async fn list_attempts(
        &self,
        tenant: &Tenant,
        sub: &SubscriptionId,
        limit: usize,
        before: Option<&AttemptId>,
    ) -> Result<AttemptSlice>;

    /// Stores an uploaded plugin's record and its component bytes together.
    async fn put_plugin(&self, record: &PluginRecord, wasm: &[u8]) -> Result<()>;
    /// Every uploaded plugin's record.
    async fn list_plugins(&self) -> Result<Vec<PluginRecord>>;
    /// The component bytes with this SHA-256, if kept.
    async fn plugin_blob(&self, sha256: &str) -> Result<Option<Vec<u8>>>;

    /// Deletes, atomically per record, what `cutoffs` allow: final events
    /// with their deliveries, old attempts, and uploaded component bytes no
    /// plugin names any more. A pending delivery and its event are never
    /// deleted. Looks at no more than `budget` records per call, so a caller
    /// loops (yielding between calls) until [`Swept::done`].
    async fn sweep(&self, cutoffs: &Cutoffs, budget: usize) -> Result<Swept>;
}
