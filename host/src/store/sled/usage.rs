//! The store's size as `storage.max_size` limits it: the bytes of the keys
//! and values in the trees.
//!
//! Not the size of sled's files: sled's log keeps overwritten and deleted
//! records until it reuses their segments, and its files seldom shrink, so
//! a limit on them, once reached, would stay reached after retention has
//! deleted half the store. This count falls as soon as records are deleted.
//! Expect the files to take some multiple of it (sled's space amplification).
//!
//! The journal moves the count with every apply ([`super::journal`]); the
//! commit thread saves it in the `meta` tree before each flush. Changes
//! made after that save are still in the journal after a crash, and each
//! record carries the count as it was before its change: replaying sets the
//! count from the first record left and adds each change's bytes. Only the
//! last change's bytes can be missed (re-applying a write that survived
//! adds nothing), so a crash leaves the count off by at most one change.

use super::commit::Trees;
use super::journal::Slot;
use crate::store::{Result, StoreError};

/// The `meta` key of the saved count (u64, big-endian).
const LIVE_BYTES: &[u8] = b"live_bytes";

/// Sets the journal's count from the saved one, or counts every record
/// when none was saved (a new store, or one written before the count
/// existed: a one-time walk).
pub(super) fn load(trees: &Trees) -> Result<()> {
    let bytes = match trees.meta.get(LIVE_BYTES)? {
        Some(saved) => u64::from_be_bytes(saved.as_ref().try_into().map_err(|_| {
            StoreError::Backend(
                format!("the saved store size has {} bytes, not 8", saved.len()).into(),
            )
        })?),
        None => count(trees)?,
    };
    trees.journal.set_live_bytes(bytes);
    Ok(())
}

/// Saves the current count, when it moved since the last save.
pub(super) fn save(trees: &Trees) -> Result<()> {
    let bytes = trees.journal.live_bytes().to_be_bytes();
    if trees.meta.get(LIVE_BYTES)?.as_deref() != Some(&bytes[..]) {
        trees.meta.insert(LIVE_BYTES, &bytes)?;
    }
    Ok(())
}

/// Walks every tree the journal writes.
pub(super) fn count(trees: &Trees) -> Result<u64> {
    let mut total = 0;
    for slot in Slot::ALL {
        for kv in trees.tree(slot).iter() {
            let (key, value) = kv?;
            total += (key.len() + value.len()) as u64;
        }
    }
    Ok(total)
}
