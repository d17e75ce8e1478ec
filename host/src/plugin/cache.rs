//! The on-disk cache of compiled plugins, so a restart does not recompile.
//!
//! An entry is `<dir>/<sha256 of the component>-<engine hash>.cwasm`: native
//! code wasmtime produced for exactly those bytes with exactly this engine
//! configuration and wasmtime version (the engine hash is
//! `Engine::precompile_compatibility_hash`). Entries are written to a
//! temporary file and renamed into place, so a crash never leaves a torn
//! entry under a real name. Loading an entry maps native code into the
//! process, so entries are only ever read from this directory, under names
//! this module derived, and never from a path a user supplied.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

pub(super) struct DiskCache {
    dir: PathBuf,
    engine_hash: String,
}

impl DiskCache {
    /// Opens (creating it, owner-only, if needed) the cache directory.
    pub(super) fn open(dir: &Path, engine: &wasmtime::Engine) -> io::Result<DiskCache> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
        Ok(DiskCache {
            dir: dir.to_path_buf(),
            engine_hash: engine_hash(engine),
        })
    }

    pub(super) fn entry_path(&self, sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{sha256}-{}.cwasm", self.engine_hash))
    }

    /// The cached compilation of the component with this hash, if there is a
    /// usable one. A stale or corrupt entry is removed and reported as absent.
    pub(super) fn load(&self, engine: &wasmtime::Engine, sha256: &str) -> Option<Component> {
        let path = self.entry_path(sha256);
        if !path.is_file() {
            return None;
        }
        // SAFETY: `deserialize_file` trusts the file to be wasmtime's own
        // output. This path is inside the cache directory, named from the
        // component's sha256 and this engine's compatibility hash, and only
        // `store` below writes such names (whole files, renamed into place).
        // wasmtime also checks the header and engine compatibility of the
        // artifact before using it.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "discarding unusable compiled plugin");
                if let Err(e) = fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove unusable compiled plugin");
                }
                None
            }
        }
    }

    /// Saves a compiled component under its hash, atomically.
    pub(super) fn store(&self, component: &Component, sha256: &str) -> io::Result<()> {
        static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);
        let bytes = component.serialize().map_err(io::Error::other)?;
        let path = self.entry_path(sha256);
        let temp = self.dir.join(format!(
            ".{sha256}.{}.{}.tmp",
            std::process::id(),
            NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut file = fs::File::create_new(&temp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&temp, &path)
        })();
        if written.is_err() {
            // Best effort: the temp name is ours alone and never read.
            let _ = fs::remove_file(&temp);
        }
        written
    }
}

/// A filename-safe digest of everything that makes compiled code usable by
/// this engine (wasmtime version, target, compiler settings, features).
fn engine_hash(engine: &wasmtime::Engine) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..8])
}

/// Feeds `Hash` output into SHA-256: unlike `DefaultHasher`, its result is
/// specified, so it is stable across builds of hookshape.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("SHA-256 has 32 bytes"))
    }
}
