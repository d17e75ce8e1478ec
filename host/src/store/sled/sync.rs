//! What `storage.sync = "full"` adds to sled's flush, so that an
//! acknowledged write survives power loss and not only the process.
//!
//! sled 0.34's `flush()` ends in `sync_file_range` on its log, which neither
//! empties the drive's volatile cache nor records the log's new size, and
//! it never syncs the blob files it writes for values over ~128 KiB (nor
//! their directory). After each flush the log gets an `fdatasync`, and
//! every blob file not seen before an `fsync`, then the blob directory;
//! only then are writers told their writes are durable.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// The files of one sled directory that a full sync covers.
pub(super) struct DiskSync {
    log: File,
    blobs: PathBuf,
    /// Blob files already synced; blobs are never rewritten in place.
    synced_blobs: HashSet<std::ffi::OsString>,
    /// Syncs made, for the tests that check one precedes an acknowledgement.
    #[cfg(test)]
    pub(super) count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl DiskSync {
    /// Opens the log of the sled directory `dir` and syncs the directory
    /// itself, so the files sled created in it are there after a crash.
    pub(super) fn open(dir: &Path) -> io::Result<DiskSync> {
        sync_dir(dir)?;
        Ok(DiskSync {
            log: File::open(dir.join("db"))?,
            blobs: dir.join("blobs"),
            synced_blobs: HashSet::new(),
            #[cfg(test)]
            count: Default::default(),
        })
    }

    /// Makes everything sled has flushed so far durable.
    pub(super) fn sync(&mut self) -> io::Result<()> {
        let mut new_blob = false;
        let mut present = HashSet::new();
        match std::fs::read_dir(&self.blobs) {
            Ok(entries) => {
                for entry in entries {
                    let name = entry?.file_name();
                    if !self.synced_blobs.contains(&name) {
                        match File::open(self.blobs.join(&name)) {
                            Ok(f) => f.sync_all()?,
                            // Removed since the listing: nothing to keep.
                            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                            Err(e) => return Err(e),
                        }
                        new_blob = true;
                    }
                    present.insert(name);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.synced_blobs = present;
        if new_blob {
            sync_dir(&self.blobs)?;
        }
        self.log.sync_data()?;
        #[cfg(test)]
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
