//! The demo's data directory, `demo-data/`: the dispatcher's sled store and the git-bridge's
//! repository. Every run empties it first, so the demo replays the same story each time (and
//! shows the effect of an edited config) instead of finding its events already delivered. A
//! marker file proves the directory is the demo's before anything is deleted.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The directory, relative to the workspace root.
pub const DEMO_DATA: &str = "demo-data";
/// Written at creation; a `demo-data/` without it is not the demo's to delete.
const MARKER: &str = ".hookshape-demo";

/// A fresh, empty `demo-data/`.
#[derive(Debug)]
pub struct DemoData {
    root: PathBuf,
}

impl DemoData {
    /// Empties (or creates) `demo-data/` under the working directory. `storage` is the config's
    /// storage path, which must lie inside it so the dispatcher starts fresh too.
    pub fn reset(storage: &Path) -> anyhow::Result<DemoData> {
        Self::reset_in(Path::new(DEMO_DATA), storage)
    }

    fn reset_in(root: &Path, storage: &Path) -> anyhow::Result<DemoData> {
        if !storage.starts_with(root) || storage == root {
            bail!(
                "the demo keeps its data under {}/, but the config's storage.path is {}",
                root.display(),
                storage.display()
            );
        }
        if root.exists() {
            if !root.join(MARKER).is_file() {
                bail!(
                    "{} exists but was not created by the demo; move it away first",
                    root.display()
                );
            }
            fs::remove_dir_all(root).with_context(|| format!("cannot empty {}", root.display()))?;
        }
        fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
        fs::write(
            root.join(MARKER),
            "created by hookshape-demo; emptied at each run\n",
        )
        .with_context(|| format!("cannot write {}", root.join(MARKER).display()))?;
        Ok(DemoData {
            root: root.to_owned(),
        })
    }

    /// The git-bridge's work tree.
    pub fn repo(&self) -> PathBuf {
        self.root.join("git-bridge")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_demo_directory_is_emptied_and_others_are_left_alone() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("demo-data");
        let storage = root.join("hookshape");

        let data = DemoData::reset_in(&root, &storage).unwrap();
        fs::create_dir_all(data.repo()).unwrap();
        fs::write(data.repo().join("old"), "from the last run").unwrap();
        DemoData::reset_in(&root, &storage).unwrap();
        assert!(!data.repo().exists());
        assert!(root.join(MARKER).is_file());

        fs::remove_file(root.join(MARKER)).unwrap();
        fs::write(root.join("precious"), "not the demo's").unwrap();
        let error = DemoData::reset_in(&root, &storage).unwrap_err().to_string();
        assert!(error.contains("not created by the demo"), "{error}");
        assert!(root.join("precious").is_file());
    }

    #[test]
    fn the_store_must_live_inside_the_demo_directory() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("demo-data");
        for storage in [temp.path().join("hookshape-data"), root.clone()] {
            let error = DemoData::reset_in(&root, &storage).unwrap_err().to_string();
            assert!(error.contains("storage.path"), "{error}");
        }
        assert!(!root.exists());
    }
}
