//! The storage limits (`storage.max_size`, `storage.min_free`), checked on
//! every ingest: the store's size is a counter ([`super::usage`]); free
//! space is asked of the filesystem at most once a second.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::commit::Trees;
use crate::store::{Options, Result, StoreError};

/// How long a free-space measure stands: a second of ingest cannot fill a
/// disk that had `min_free` left, and measuring is a system call.
const MEASURE_EVERY: Duration = Duration::from_secs(1);

pub(super) struct Space {
    trees: Arc<Trees>,
    dir: PathBuf,
    max_size: u64,
    min_free: u64,
    /// When free space was last measured, and the limit it broke then.
    last: Mutex<Option<(Instant, Option<String>)>>,
}

impl Space {
    pub(super) fn new(trees: Arc<Trees>, dir: &Path, options: &Options) -> Space {
        Space {
            trees,
            dir: dir.to_path_buf(),
            max_size: options.max_size,
            min_free: options.min_free,
            last: Mutex::new(None),
        }
    }

    /// `Err(Full)` while a limit is broken: the store's size as of now,
    /// free space as of the last measure.
    pub(super) fn check(&self) -> Result<()> {
        let size = self.trees.journal.live_bytes();
        if size > self.max_size {
            return Err(StoreError::Full(format!(
                "the store holds {size} bytes of records, past storage.max_size ({} bytes)",
                self.max_size
            )));
        }
        let mut last = self.last.lock();
        let broken = match &*last {
            Some((at, broken)) if at.elapsed() < MEASURE_EVERY => broken.clone(),
            _ => {
                let broken = self.measure_free();
                *last = Some((Instant::now(), broken.clone()));
                broken
            }
        };
        broken.map_or(Ok(()), |why| Err(StoreError::Full(why)))
    }

    /// `min_free` broken now, in words; a failed measure counts as not, so
    /// a filesystem that cannot say its free space does not stop ingest.
    fn measure_free(&self) -> Option<String> {
        match rustix::fs::statvfs(&self.dir) {
            Ok(fs) => {
                let free = fs.f_bavail.saturating_mul(fs.f_frsize);
                (free < self.min_free).then(|| {
                    format!(
                        "{free} bytes are free on the data filesystem, under storage.min_free ({} bytes)",
                        self.min_free
                    )
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the data filesystem's free space");
                None
            }
        }
    }
}
