//! The PostgreSQL backend: any number of nodes share one database.
//!
//! Tables (see `migrations/`): `subscriptions`, `events` (unique on
//! `(tenant, source_id)`: idempotent ingest), `deliveries` (the due-time
//! queue itself: `pending`, `due_ms`, and a claim `locked_by` /
//! `locked_until_ms`), `attempts`, `plugins` and `plugin_blobs`. Records
//! are the same JSON as sled's, in `bytea`; the other columns are what
//! queries select on.
//!
//! Every method is one transaction, durable on commit (PostgreSQL's own
//! WAL fsync), so [`Store::durable`] has nothing to wait for. The queue:
//! [`queue`] claims due rows in batches with `FOR UPDATE SKIP LOCKED`,
//! setting a lease that a live node keeps renewing and another node
//! retakes once it runs out; an ordered subscription's only claimable row
//! is its head (lowest `seq` pending), so one delivery is in flight per
//! subscription across all nodes. Ingests `NOTIFY`, and [`listen`] wakes
//! idle dispatchers on every node. Each node keeps the subscriptions in
//! memory and checks a version counter before matching an event and before
//! claiming, so a change made through any node is used by every node's next
//! ingest ([`subscriptions`]).

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::tokio_postgres::{self, NoTls};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::index::SubscriptionIndex;
use super::{
    AttemptResult, AttemptSlice, Claimed, Cutoffs, Ingested, NewDelivery, PluginRecord, Queued,
    ReconcileLock, Release, Result, Store, StoreError, Swept,
};
use crate::clock::Timestamp;
use crate::ids::{AttemptId, DeliveryId, EventId, SubscriptionId, Tenant};
use crate::model::{Attempt, Delivery, Event, Subscription};

mod attempts;
mod events;
mod listen;
mod migrations;
mod queue;
mod retention;
mod subscriptions;

pub use migrations::migrate;

use listen::WakeSlot;
use queue::Claims;

/// Connections one node keeps to the database at most.
const POOL_SIZE: usize = 16;

/// How long a call waits for a pooled connection, or a new one to open,
/// before it fails (and ingest answers 503) instead of hanging.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// The NOTIFY channel that says new work was queued.
const WORK_CHANNEL: &str = "hookshape_work";

/// `[storage]` with `backend = "postgres"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where the database is.
    pub url: DatabaseUrl,
    /// A claim not renewed for this long is taken by another node.
    pub lease: Duration,
}

impl Settings {
    /// `storage.lease` when left out.
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
}

/// A PostgreSQL connection URL (it may hold a password: never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Checks `url` the way the driver will read it.
    pub fn parse(url: &str) -> std::result::Result<DatabaseUrl, String> {
        tokio_postgres::Config::from_str(url)
            .map_err(|e| format!("not a PostgreSQL connection URL: {e}"))?;
        Ok(DatabaseUrl(url.to_owned()))
    }

    fn config(&self) -> tokio_postgres::Config {
        tokio_postgres::Config::from_str(&self.0).expect("checked when parsed")
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl(..)")
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialise to JSON")
}

fn decode<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        key: key.to_owned(),
        source,
    })
}

/// Milliseconds as PostgreSQL's `bigint`.
fn ms(t: Timestamp) -> i64 {
    i64::try_from(t.as_millis()).unwrap_or(i64::MAX)
}

/// The key the advisory locks and claim counts use for a subscription
/// (tenants and subscription ids are slugs, without `/`).
fn subscription_key(tenant: &str, id: &str) -> String {
    format!("{tenant}/{id}")
}

/// The PostgreSQL backend; clones share one pool.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    settings: Settings,
    /// This node's name on its claims.
    node: String,
    index: RwLock<SubscriptionIndex>,
    /// The `subscriptions_version` the index holds every change up to.
    index_version: Mutex<i64>,
    /// One reload at a time; the others wait for it instead of repeating it.
    reloading: tokio::sync::Mutex<()>,
    claims: Mutex<Claims>,
    /// Pending deliveries, as last counted by the upkeep task.
    queue_len: AtomicUsize,
    /// Whether the last upkeep round reached the database.
    reachable: AtomicBool,
    wake: Arc<WakeSlot>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl PgStore {
    /// Connects, migrates the schema (see [`migrate`]), reads the
    /// subscriptions and starts the listener and upkeep tasks.
    pub async fn open(settings: &Settings) -> Result<Self> {
        migrate(&settings.url).await?;
        let pg = settings.url.config();
        let manager = Manager::from_config(
            pg.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(CONNECT_WAIT))
            .create_timeout(Some(CONNECT_WAIT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let wake = Arc::new(WakeSlot::default());
        let node = format!("{}-{}", hostname(), ulid::Ulid::new());
        let inner = Arc::new_cyclic(|weak| Inner {
            pool,
            settings: settings.clone(),
            node,
            index: RwLock::new(SubscriptionIndex::default()),
            index_version: Mutex::new(-1),
            reloading: tokio::sync::Mutex::new(()),
            claims: Mutex::new(Claims::default()),
            queue_len: AtomicUsize::new(0),
            reachable: AtomicBool::new(true),
            wake: wake.clone(),
            tasks: vec![
                listen::spawn(pg, wake),
                tokio::spawn(queue::upkeep(weak.clone())),
            ],
        });
        let store = PgStore { inner };
        store.fresh_index().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.inner.pool.get().await?)
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "node".to_owned())
}

/// A session holding the reconcile advisory lock; closing it releases the lock.
struct SessionLock {
    _client: tokio_postgres::Client,
}

/// The advisory lock key reconciles take turns on.
const RECONCILE_LOCK: i64 = 0x686f_6f6b_7265_636e;

#[async_trait]
impl Store for PgStore {
    /// Commits are durable when they return.
    async fn durable(&self) -> Result<()> {
        Ok(())
    }

    fn readiness(&self) -> Result<()> {
        if self.inner.reachable.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(StoreError::Backend("the database is unreachable".into()))
        }
    }

    async fn put_subscription(&self, sub: &Subscription) -> Result<()> {
        PgStore::put_subscription(self, sub).await
    }

    async fn get_subscription(
        &self,
        tenant: &Tenant,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>> {
        PgStore::get_subscription(self, tenant, id).await
    }

    async fn list_subscriptions(&self, tenant: &Tenant) -> Result<Vec<Subscription>> {
        PgStore::list_subscriptions(self, Some(tenant)).await
    }

    async fn all_subscriptions(&self) -> Result<Vec<Subscription>> {
        PgStore::list_subscriptions(self, None).await
    }

    async fn delete_subscription(&self, tenant: &Tenant, id: &SubscriptionId) -> Result<bool> {
        PgStore::delete_subscription(self, tenant, id).await
    }

    async fn cancel_pending(&self, tenant: &Tenant, id: &SubscriptionId) -> Result<usize> {
        PgStore::cancel_pending(self, tenant, id).await
    }

    fn current_subscription(
        &self,
        tenant: &Tenant,
        id: &SubscriptionId,
    ) -> Option<Arc<Subscription>> {
        self.inner.index.read().get(tenant, id)
    }

    async fn matching_subscriptions(
        &self,
        tenant: &Tenant,
        event_type: &str,
    ) -> Result<Vec<Arc<Subscription>>> {
        self.fresh_index().await?;
        Ok(self.inner.index.read().matching(tenant, event_type))
    }

    async fn reconcile_lock(&self) -> Result<ReconcileLock> {
        let (client, connection) = self.inner.settings.url.config().connect(NoTls).await?;
        tokio::spawn(connection);
        client
            .execute("SELECT pg_advisory_lock($1)", &[&RECONCILE_LOCK])
            .await?;
        Ok(ReconcileLock::holding(SessionLock { _client: client }))
    }

    fn wake_on_remote_work(&self, dispatcher: Arc<tokio::sync::Notify>) {
        self.inner.wake.set(dispatcher);
    }

    async fn ingest(&self, event: &Event, deliveries: &[NewDelivery]) -> Result<Ingested> {
        PgStore::ingest(self, event, deliveries).await
    }

    async fn get_event(&self, id: &EventId) -> Result<Option<Event>> {
        PgStore::get_event(self, id).await
    }

    async fn event_deliveries(&self, id: &EventId) -> Result<Vec<Delivery>> {
        PgStore::event_deliveries(self, id).await
    }

    async fn add_delivery(&self, d: &Delivery, ordered: bool) -> Result<()> {
        PgStore::add_delivery(self, d, ordered).await
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        limit: usize,
        per_subscription: usize,
    ) -> Result<Claimed> {
        PgStore::claim_due(self, now, limit, per_subscription).await
    }

    fn release(&self, id: &DeliveryId, how: Release) {
        PgStore::release(self, id, how)
    }

    async fn attempt_inputs(&self, queued: &Queued) -> Result<Option<(Delivery, Event)>> {
        PgStore::attempt_inputs(self, queued).await
    }

    async fn record_attempt(
        &self,
        result: &AttemptResult,
        _ordered: bool,
        _now: Timestamp,
    ) -> Result<()> {
        PgStore::record_attempt(self, result).await
    }

    fn queue_len(&self) -> usize {
        self.inner.queue_len.load(Ordering::Relaxed)
    }

    async fn get_attempt(&self, id: &AttemptId) -> Result<Option<Attempt>> {
        PgStore::get_attempt(self, id).await
    }

    async fn list_attempts(
        &self,
        tenant: &Tenant,
        sub: &SubscriptionId,
        limit: usize,
        before: Option<&AttemptId>,
    ) -> Result<AttemptSlice> {
        PgStore::list_attempts(self, tenant, sub, limit, before).await
    }

    async fn put_plugin(&self, record: &PluginRecord, wasm: &[u8]) -> Result<()> {
        PgStore::put_plugin(self, record, wasm).await
    }

    async fn list_plugins(&self) -> Result<Vec<PluginRecord>> {
        PgStore::list_plugins(self).await
    }

    async fn plugin_blob(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        PgStore::plugin_blob(self, sha256).await
    }

    async fn sweep(&self, cutoffs: &Cutoffs, budget: usize) -> Result<Swept> {
        PgStore::sweep(self, cutoffs, budget).await
    }
}
