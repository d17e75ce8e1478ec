//! Group commit: writers take a ticket after writing (or staging); one
//! thread commits what is staged as one change, flushes, and publishes the
//! highest ticket the flush covered.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};
use tokio::sync::watch;

use super::attempts::{StagedFinish, finish_in};
use super::journal::{Change, Journal, Slot};
use super::schedule::Schedule;
use super::sync::DiskSync;
use super::usage;
use crate::model::Subscription;
use crate::store::index::SubscriptionIndex;
use crate::store::{Receipt, Result, StoreError};

/// Ingests accepted but not yet written to sled.
#[derive(Default)]
pub(super) struct Staged {
    pub(super) writes: Vec<(Slot, Vec<u8>, Vec<u8>)>,
    pub(super) finishes: Vec<StagedFinish>,
    /// Receipts by `tenant \0 source id`, kept until their batch is
    /// committed so a duplicate is caught while its first is in flight.
    pub(super) source_ids: HashMap<Vec<u8>, Receipt>,
    /// The source keys of `writes`, to forget once they are committed.
    pub(super) source_keys: Vec<Vec<u8>>,
    /// The bytes in `writes`: past [`MAX_STAGED_BYTES`] ingest is refused.
    pub(super) bytes: usize,
}

/// The most staged ingest bytes waiting for the commit thread. Ingest waits
/// for its flush, so the backlog only grows when the disk falls behind a
/// flood of clients; past this it answers "overloaded" instead of holding
/// ever more in memory. 64 MiB is ~1 s of the fastest ingest measured.
pub(super) const MAX_STAGED_BYTES: usize = 64 << 20;

/// Every tree of the database (see the module doc), shared by the store
/// and its commit thread.
pub(super) struct Trees {
    pub(super) subscriptions: ::sled::Tree,
    pub(super) events: ::sled::Tree,
    pub(super) source_ids: ::sled::Tree,
    pub(super) deliveries: ::sled::Tree,
    pub(super) event_deliveries: ::sled::Tree,
    pub(super) queue: ::sled::Tree,
    pub(super) sub_pending: ::sled::Tree,
    pub(super) attempts: ::sled::Tree,
    pub(super) sub_attempts: ::sled::Tree,
    pub(super) plugins: ::sled::Tree,
    pub(super) plugin_blobs: ::sled::Tree,
    pub(super) journal: Journal,
    /// The due-time queue in memory, kept in step with `queue` by the
    /// journal (see [`super::queue`]).
    pub(super) schedule: Mutex<Schedule>,
    /// The store's own bookkeeping, written outside the journal (see [`super::usage`]).
    pub(super) meta: ::sled::Tree,
}

impl Trees {
    pub(super) fn open(db: &::sled::Db) -> Result<Self> {
        Ok(Trees {
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
            schedule: Mutex::new(Schedule::default()),
            meta: db.open_tree("meta")?,
        })
    }

    pub(super) fn tree(&self, slot: Slot) -> &::sled::Tree {
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

    /// Makes the change `build` describes, atomically (see [`super::journal`]).
    pub(super) fn write<T>(&self, build: impl FnOnce(&mut Change<'_>) -> Result<T>) -> Result<T> {
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

/// The state the writers and the commit thread share.
pub(super) struct GroupCommit {
    staged: Mutex<Staged>,
    trees: Arc<Trees>,
    index: Arc<RwLock<SubscriptionIndex>>,
    written: AtomicU64,
    flushed: watch::Sender<u64>,
    failed: watch::Sender<Option<Failure>>,
    kick: Mutex<Kick>,
    cvar: Condvar,
}

/// Why writers are not being told their writes are durable.
#[derive(Debug, Clone)]
enum Failure {
    /// The last flush failed; the thread keeps trying.
    Flush(String),
    /// The commit thread has ended: nothing written now will be flushed.
    Stopped,
}

/// Ends the commit thread's watch: whatever ends it (a stop, a panic),
/// writers still waiting get an error instead of waiting forever.
struct StoppedOnDrop<'a>(&'a watch::Sender<Option<Failure>>);

impl Drop for StoppedOnDrop<'_> {
    fn drop(&mut self) {
        self.0.send_replace(Some(Failure::Stopped));
    }
}

#[derive(Default)]
struct Kick {
    pending: bool,
    stop: bool,
}

/// Owns the flush thread; dropping it stops and joins the thread, so the
/// sled directory is unlocked once the last store clone is gone.
pub(super) struct Flusher {
    pub(super) commit: Arc<GroupCommit>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flusher {
    pub(super) fn start(
        db: ::sled::Db,
        trees: Arc<Trees>,
        index: Arc<RwLock<SubscriptionIndex>>,
        disk: Option<DiskSync>,
    ) -> Self {
        let commit = Arc::new(GroupCommit {
            staged: Mutex::new(Staged::default()),
            trees,
            index,
            written: AtomicU64::new(0),
            flushed: watch::Sender::new(0),
            failed: watch::Sender::new(None),
            kick: Mutex::new(Kick::default()),
            cvar: Condvar::new(),
        });
        let gc = commit.clone();
        let thread = std::thread::Builder::new()
            .name("hookshape-flush".into())
            .spawn(move || gc.run(db, disk))
            .expect("spawn the flush thread");
        Flusher {
            commit,
            thread: Some(thread),
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.commit.kick.lock().stop = true;
        self.commit.cvar.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl GroupCommit {
    fn run(&self, db: ::sled::Db, mut disk: Option<DiskSync>) {
        let _stopped = StoppedOnDrop(&self.failed);
        loop {
            let stop = {
                let mut kick = self.kick.lock();
                while !kick.pending && !kick.stop {
                    self.cvar.wait(&mut kick);
                }
                kick.pending = false;
                kick.stop
            };
            // Read before taking the batch: everything staged before a
            // ticket was taken is in this batch or an earlier one.
            let target = self.written.load(Ordering::SeqCst);
            let (writes, finishes, source_keys) = {
                let mut staged = self.lock_staged();
                staged.bytes = 0;
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
            let flushed = usage::save(&self.trees)
                .and_then(|()| Ok(db.flush()?))
                .and_then(|_| {
                    disk.as_mut()
                        .map_or(Ok(()), DiskSync::sync)
                        .map_err(|e| StoreError::Backend(Box::new(e)))
                });
            match flushed {
                Ok(()) => {
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
                    self.failed
                        .send_replace(Some(Failure::Flush(e.to_string())));
                    std::thread::sleep(Duration::from_millis(50));
                    self.kick.lock().pending = true;
                }
            }
            if stop {
                return;
            }
        }
    }

    pub(super) fn lock_staged(&self) -> MutexGuard<'_, Staged> {
        self.staged.lock()
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
            .then(|| self.index.write());
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
                    self.failed
                        .send_replace(Some(Failure::Flush(e.to_string())));
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        drop(index);
        let mut staged = self.lock_staged();
        for key in source_keys {
            staged.source_ids.remove(key);
        }
    }

    /// `Err` while writes cannot be taken: the staged backlog is past its
    /// bound, the last flush failed, or the thread has stopped.
    pub(super) fn check_backlog(&self) -> Result<()> {
        match &*self.failed.borrow() {
            Some(Failure::Flush(e)) => return Err(StoreError::Backend(e.clone().into())),
            Some(Failure::Stopped) => return Err(StoreError::Closed),
            None => {}
        }
        if self.lock_staged().bytes > MAX_STAGED_BYTES {
            return Err(StoreError::Overloaded);
        }
        Ok(())
    }

    pub(super) async fn wait(&self) -> Result<()> {
        let ticket = self.written.fetch_add(1, Ordering::SeqCst) + 1;
        self.kick.lock().pending = true;
        self.cvar.notify_one();
        let mut flushed = self.flushed.subscribe();
        let mut failed = self.failed.subscribe();
        loop {
            if *flushed.borrow_and_update() >= ticket {
                return Ok(());
            }
            match failed.borrow_and_update().clone() {
                Some(Failure::Flush(e)) => return Err(StoreError::Backend(e.into())),
                Some(Failure::Stopped) => return Err(StoreError::Closed),
                None => {}
            }
            tokio::select! {
                r = flushed.changed() => if r.is_err() { return Err(StoreError::Closed) },
                r = failed.changed() => if r.is_err() { return Err(StoreError::Closed) },
            }
        }
    }
}
