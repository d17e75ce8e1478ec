//! The storage limits (`storage.max_size`, `storage.min_free`): measured at
//! most once a second, so checking them on every ingest costs a lock.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::store::{Options, Result, StoreError};

/// How long a measure stands: a second of ingest cannot fill a disk that
/// had `min_free` left, and measuring walks sled's files.
const MEASURE_EVERY: Duration = Duration::from_secs(1);

pub(super) struct Space {
    db: ::sled::Db,
    dir: PathBuf,
    max_size: u64,
    min_free: u64,
    /// When it was last measured, and the limit it broke then.
    last: Mutex<Option<(Instant, Option<String>)>>,
}

impl Space {
    pub(super) fn new(db: ::sled::Db, dir: &Path, options: &Options) -> Space {
        Space {
            db,
            dir: dir.to_path_buf(),
            max_size: options.max_size,
            min_free: options.min_free,
            last: Mutex::new(None),
        }
    }

    /// `Err(Full)` while a limit is broken, as of the last measure.
    pub(super) fn check(&self) -> Result<()> {
        let mut last = self.last.lock();
        let broken = match &*last {
            Some((at, broken)) if at.elapsed() < MEASURE_EVERY => broken.clone(),
            _ => {
                let broken = self.measure();
                *last = Some((Instant::now(), broken.clone()));
                broken
            }
        };
        broken.map_or(Ok(()), |why| Err(StoreError::Full(why)))
    }

    /// The limit broken now, in words; a failed measure counts as none, so
    /// a filesystem that cannot say its free space does not stop ingest.
    fn measure(&self) -> Option<String> {
        if let Ok(size) = self.db.size_on_disk()
            && size > self.max_size
        {
            return Some(format!(
                "the store holds {size} bytes, past storage.max_size ({} bytes)",
                self.max_size
            ));
        }
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
