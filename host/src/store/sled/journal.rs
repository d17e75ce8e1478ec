//! Atomic changes across trees without sled transactions.
//!
//! sled 0.34 guards transactions with a process-wide lock which, once any
//! transaction has run, every read, write and flush takes as well: a
//! transaction waits for a flush's disk sync, and every reader waits for the
//! transaction. With the commit thread writing batches back to back, that
//! queued the whole store (attempts, the dispatcher's scans, duplicate
//! checks) behind it and kept the next batch from being written while the
//! last one was synced. Plain writes take no such lock.
//!
//! A [`Change`] collects writes; its reads see the writes made before them.
//! [`Journal::write`] inserts the whole change as one record in the `journal`
//! tree, then applies it to its trees with plain writes. One insert is
//! atomic, and sled recovers a prefix of its log after a crash, so if any
//! write of a change survived, its record did too: opening the store applies
//! the records it finds again, in order, before the store is used
//! ([`Journal::replay`]). A record is removed once a flush covers its
//! writes ([`Journal::forget`]).
//!
//! Writers take turns (one lock), so changes apply in record order and
//! replaying what is left of the journal, in order, ends where the last
//! change left every key it touched. That holds only if every write to the
//! trees goes through here: a plain write could be overwritten by the replay
//! of an older record.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::commit::Trees;
use super::queue;
use crate::store::{Result, StoreError};

/// Which tree a write goes to (the record's encoding: `as u8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Slot {
    Subscriptions,
    Events,
    SourceIds,
    Deliveries,
    EventDeliveries,
    Queue,
    SubPending,
    Attempts,
    SubAttempts,
    Plugins,
    PluginBlobs,
}

impl Slot {
    pub(super) const ALL: [Slot; 11] = [
        Slot::Subscriptions,
        Slot::Events,
        Slot::SourceIds,
        Slot::Deliveries,
        Slot::EventDeliveries,
        Slot::Queue,
        Slot::SubPending,
        Slot::Attempts,
        Slot::SubAttempts,
        Slot::Plugins,
        Slot::PluginBlobs,
    ];
}

/// One write of a change.
#[derive(Debug, PartialEq)]
enum Op {
    Insert(Slot, Vec<u8>, ::sled::IVec),
    Remove(Slot, Vec<u8>),
}

/// The writes of one change, in order.
pub(super) struct Change<'t> {
    trees: &'t Trees,
    ops: Vec<Op>,
    /// The last op on each key, for reads.
    latest: HashMap<Slot, HashMap<Vec<u8>, usize>>,
}

impl<'t> Change<'t> {
    fn new(trees: &'t Trees) -> Self {
        Change {
            trees,
            ops: Vec::new(),
            latest: HashMap::new(),
        }
    }

    /// The key's value as this change leaves it so far.
    pub(super) fn get(&self, slot: Slot, key: &[u8]) -> Result<Option<::sled::IVec>> {
        match self.latest.get(&slot).and_then(|keys| keys.get(key)) {
            Some(&i) => Ok(match &self.ops[i] {
                Op::Insert(_, _, value) => Some(value.clone()),
                Op::Remove(..) => None,
            }),
            None => Ok(self.trees.tree(slot).get(key)?),
        }
    }

    pub(super) fn insert(
        &mut self,
        slot: Slot,
        key: impl Into<Vec<u8>>,
        value: impl Into<::sled::IVec>,
    ) {
        let key = key.into();
        self.note(slot, &key);
        self.ops.push(Op::Insert(slot, key, value.into()));
    }

    pub(super) fn remove(&mut self, slot: Slot, key: impl Into<Vec<u8>>) {
        let key = key.into();
        self.note(slot, &key);
        self.ops.push(Op::Remove(slot, key));
    }

    fn note(&mut self, slot: Slot, key: &[u8]) {
        let at = self.ops.len();
        self.latest
            .entry(slot)
            .or_default()
            .insert(key.to_vec(), at);
    }
}

/// The `journal` tree: records of changes whose writes may not be durable.
pub(super) struct Journal {
    tree: ::sled::Tree,
    /// The next record's number; held while a change is built and applied.
    next: Mutex<u64>,
    /// Every record up to this one is applied.
    applied: AtomicU64,
    /// The bytes of keys and values in the trees (see [`super::usage`]),
    /// moved by every apply: sled hands back the value a write replaces.
    live: AtomicI64,
}

impl Journal {
    pub(super) fn new(tree: ::sled::Tree) -> Self {
        Journal {
            tree,
            next: Mutex::new(1),
            applied: AtomicU64::new(0),
            live: AtomicI64::new(0),
        }
    }

    /// The bytes of keys and values in the trees, as of the last apply.
    pub(super) fn live_bytes(&self) -> u64 {
        self.live.load(Ordering::SeqCst).max(0) as u64
    }

    /// Sets the count [`Self::live_bytes`] moves from (at open).
    pub(super) fn set_live_bytes(&self, bytes: u64) {
        self.live.store(bytes as i64, Ordering::SeqCst);
    }

    /// Applies the records left by the last run, in order (see the module
    /// doc); they are removed after the first flush, like any other.
    pub(super) fn replay(&self, trees: &Trees) -> Result<()> {
        let mut next = self.next.lock();
        for kv in self.tree.iter() {
            let (key, record) = kv?;
            let seq = record_number(&key)?;
            let (live_before, ops) = decode_record(seq, &record)?;
            // Exact as of this record, whatever the saved count missed
            // (see [`super::usage`]).
            if let Some(live) = live_before {
                self.live.store(live as i64, Ordering::SeqCst);
            }
            let moved = apply(trees, &ops)?;
            self.live.fetch_add(moved, Ordering::SeqCst);
            tracing::info!(record = seq, "applied a change left in the journal");
            *next = seq + 1;
            self.applied.store(seq, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Builds a change with `build` and, unless it fails or writes nothing,
    /// journals and applies it. Changes are made one at a time.
    pub(super) fn write<T>(
        &self,
        trees: &Trees,
        build: impl FnOnce(&mut Change<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut next = self.next.lock();
        let mut change = Change::new(trees);
        let out = build(&mut change)?;
        if change.ops.is_empty() {
            return Ok(out);
        }
        let seq = *next;
        self.tree.insert(
            seq.to_be_bytes(),
            encode_record(self.live_bytes(), &change.ops),
        )?;
        *next += 1;
        match apply(trees, &change.ops) {
            Ok(moved) => self.live.fetch_add(moved, Ordering::SeqCst),
            Err(e) => stop_after_failed_apply(seq, &e),
        };
        self.applied.store(seq, Ordering::SeqCst);
        // After the whole change is visible, so a delivery is not claimed
        // before the records an attempt reads.
        queue::follow(&trees.schedule, change.ops.iter().filter_map(queue_write));
        Ok(out)
    }

    /// Journals a change without applying it: what a crash between the two
    /// leaves behind.
    #[cfg(test)]
    pub(super) fn record_only(
        &self,
        trees: &Trees,
        build: impl FnOnce(&mut Change<'_>),
    ) -> Result<()> {
        let mut next = self.next.lock();
        let mut change = Change::new(trees);
        build(&mut change);
        self.tree.insert(
            next.to_be_bytes(),
            encode_record(self.live_bytes(), &change.ops),
        )?;
        *next += 1;
        Ok(())
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.tree.len()
    }

    /// The last record applied: a flush that starts after this call covers
    /// the writes of every record up to it.
    pub(super) fn applied(&self) -> u64 {
        self.applied.load(Ordering::SeqCst)
    }

    /// Removes the records up to `upto`, whose writes a flush has covered.
    pub(super) fn forget(&self, upto: u64) -> Result<()> {
        for kv in self.tree.range(..=upto.to_be_bytes()) {
            let (key, _) = kv?;
            self.tree.remove(key)?;
        }
        Ok(())
    }
}

/// A change whose record is journaled but whose writes failed halfway is
/// visible in memory half made, and retrying would journal it again: the
/// process stops instead, and the next start applies the record whole
/// ([`Journal::replay`]) before anything reads the store.
fn stop_after_failed_apply(seq: u64, e: &StoreError) -> ! {
    tracing::error!(
        record = seq,
        error = %e,
        "applying a journaled change failed; stopping so the next start applies it whole"
    );
    eprintln!(
        "hookshape: applying journaled change {seq} failed ({e}); stopping so the next start applies it whole"
    );
    std::process::exit(EXIT_FAILED_APPLY)
}

/// The exit code of [`stop_after_failed_apply`] (`EX_IOERR`).
const EXIT_FAILED_APPLY: i32 = 74;

/// A `queue` write as [`queue::follow`] takes it.
fn queue_write(op: &Op) -> Option<(&[u8], Option<&[u8]>)> {
    match op {
        Op::Insert(Slot::Queue, key, value) => Some((key, Some(value))),
        Op::Remove(Slot::Queue, key) => Some((key, None)),
        _ => None,
    }
}

/// Makes the writes; returns how many bytes of keys and values they added
/// (negative when they freed more than they added).
fn apply(trees: &Trees, ops: &[Op]) -> Result<i64> {
    let size = |key: &[u8], value: Option<&[u8]>| value.map_or(0, |v| (key.len() + v.len()) as i64);
    let mut moved = 0;
    for op in ops {
        match op {
            Op::Insert(slot, key, value) => {
                let old = trees.tree(*slot).insert(key, value.clone())?;
                moved += size(key, Some(value)) - size(key, old.as_deref());
            }
            Op::Remove(slot, key) => {
                let old = trees.tree(*slot).remove(key)?;
                moved -= size(key, old.as_deref());
            }
        }
    }
    Ok(moved)
}

fn record_number(key: &[u8]) -> Result<u64> {
    key.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Journal(format!("record key {key:?} is not a number")))
}

/// A record: the store's size before the change (8 bytes, length-prefixed
/// like every part; records from before it was kept start with an op),
/// then the ops ([`encode_ops`]).
fn encode_record(live_before: u64, ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12);
    out.extend_from_slice(&8u32.to_le_bytes());
    out.extend_from_slice(&live_before.to_le_bytes());
    out.extend_from_slice(&encode_ops(ops));
    out
}

/// Reads what [`encode_record`] wrote.
fn decode_record(seq: u64, record: &[u8]) -> Result<(Option<u64>, Vec<Op>)> {
    let mut r = Reader(record);
    match r.bytes() {
        Some(header) if header.len() == 8 => {
            let live = u64::from_le_bytes(header.try_into().expect("8 bytes"));
            Ok((Some(live), decode_ops(seq, r.0)?))
        }
        _ => Ok((None, decode_ops(seq, record)?)),
    }
}

/// Per op, the slot, 1 (insert) or 0 (remove), the key's length (u32,
/// little-endian) and the key, then for an insert the value's length and
/// the value.
fn encode_ops(ops: &[Op]) -> Vec<u8> {
    let size = ops
        .iter()
        .map(|op| match op {
            Op::Insert(_, k, v) => 10 + k.len() + v.len(),
            Op::Remove(_, k) => 6 + k.len(),
        })
        .sum();
    let mut out = Vec::with_capacity(size);
    let mut bytes = |b: &[u8]| {
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    };
    for op in ops {
        match op {
            Op::Insert(slot, k, v) => {
                bytes(&[*slot as u8, 1]);
                bytes(k);
                bytes(v);
            }
            Op::Remove(slot, k) => {
                bytes(&[*slot as u8, 0]);
                bytes(k);
            }
        }
    }
    out
}

fn decode_ops(seq: u64, record: &[u8]) -> Result<Vec<Op>> {
    let bad = || StoreError::Journal(format!("journal record {seq} is malformed"));
    let mut r = Reader(record);
    let mut ops = Vec::new();
    while !r.0.is_empty() {
        let (Some(&[slot, kind]), Some(key)) = (r.bytes(), r.bytes()) else {
            return Err(bad());
        };
        let slot = *Slot::ALL.get(slot as usize).ok_or_else(bad)?;
        ops.push(match kind {
            1 => Op::Insert(slot, key.to_vec(), r.bytes().ok_or_else(bad)?.into()),
            0 => Op::Remove(slot, key.to_vec()),
            _ => return Err(bad()),
        });
    }
    Ok(ops)
}

/// Reads the length-prefixed parts of a record.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.0.split_first_chunk::<4>()?;
        let (bytes, rest) = rest.split_at_checked(u32::from_le_bytes(*len) as usize)?;
        self.0 = rest;
        Some(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_decode_to_the_ops_they_were_encoded_from() {
        let ops = vec![
            Op::Insert(Slot::Events, b"evt_1".to_vec(), b"{}".as_slice().into()),
            Op::Remove(Slot::Queue, vec![0, 1, 2]),
            Op::Insert(
                Slot::SubAttempts,
                b"a\0b\0c".to_vec(),
                b"".as_slice().into(),
            ),
            Op::Insert(
                Slot::PluginBlobs,
                b"sha".to_vec(),
                vec![7u8; 100_000].into(),
            ),
        ];
        assert_eq!(decode_ops(1, &encode_ops(&ops)).unwrap(), ops);
        assert_eq!(decode_ops(2, &[]).unwrap(), []);
        assert_eq!(
            decode_record(3, &encode_record(12_345, &ops)).unwrap(),
            (Some(12_345), ops)
        );
        let old = encode_ops(&[Op::Remove(Slot::Queue, vec![1])]);
        assert_eq!(
            decode_record(4, &old).unwrap(),
            (None, vec![Op::Remove(Slot::Queue, vec![1])]),
            "a record from before the size was kept"
        );
    }

    #[test]
    fn a_malformed_record_is_an_error_naming_it() {
        let record = encode_ops(&[Op::Insert(
            Slot::Deliveries,
            b"dlv_1".to_vec(),
            b"{\"a\":1}".as_slice().into(),
        )]);
        for bad in [
            &record[..record.len() - 1],
            &record[..3],
            &[1, 0, 0, 0, 99][..],
        ] {
            let err = decode_ops(7, bad).unwrap_err();
            assert!(err.to_string().contains("journal record 7"), "{err}");
        }
        let mut unknown_slot = record.clone();
        unknown_slot[4] = Slot::ALL.len() as u8;
        assert!(decode_ops(8, &unknown_slot).is_err());
        let mut unknown_kind = record;
        unknown_kind[5] = 2;
        assert!(decode_ops(9, &unknown_kind).is_err());
    }
}
