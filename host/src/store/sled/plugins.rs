//! Uploaded plugins: their records and component bytes.

use super::SledStore;
use super::journal::Slot;
use super::records::{decode_entry, encode};
use crate::store::{PluginRecord, Result};

impl SledStore {
    /// Stores an upload's record and its bytes in one change.
    pub fn put_plugin(&self, record: &PluginRecord, wasm: &[u8]) -> Result<()> {
        self.inner.trees.write(|c| {
            c.insert(Slot::PluginBlobs, record.sha256.as_str(), wasm);
            c.insert(Slot::Plugins, record.name.as_str(), encode(record));
            Ok(())
        })
    }

    pub(crate) fn list_plugins(&self) -> Result<Vec<PluginRecord>> {
        self.inner.trees.plugins.iter().map(decode_entry).collect()
    }

    pub(crate) fn plugin_blob(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .inner
            .trees
            .plugin_blobs
            .get(sha256.as_bytes())?
            .map(|v| v.to_vec()))
    }
}
