//! The delivery ledger: which `webhook-id`s the bridge has already applied and what it answered,
//! kept as JSON lines in a file inside the Git directory so a retried delivery gets the first
//! answer again, across restarts, instead of a second commit.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::request::Action;

/// The ledger's file name inside the Git directory.
pub const LEDGER_FILE: &str = "hookshape-deliveries";

/// What the bridge answered to one delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The commit the delivery made, or HEAD when it changed nothing (none on an unborn branch).
    pub commit: Option<String>,
    /// The file's path in the repository.
    pub path: String,
    /// What was done to it.
    pub action: Action,
    /// Whether the delivery made a new commit.
    pub changed: bool,
}

#[derive(Serialize, Deserialize)]
struct Line {
    webhook_id: String,
    #[serde(flatten)]
    outcome: Outcome,
}

/// The seen ids, in memory and appended to disk.
#[derive(Debug)]
pub struct Ledger {
    file: File,
    path: PathBuf,
    seen: HashMap<String, Outcome>,
}

impl Ledger {
    /// Opens (creating) the ledger in `git_dir`. A torn last line, left by a crash mid-append, is
    /// skipped with a warning: that delivery's commit, if any, is answered as a no-op on retry.
    pub fn open(git_dir: &Path) -> io::Result<Ledger> {
        let path = git_dir.join(LEDGER_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)?;
        let mut contents = Vec::new();
        file.read_to_end(&mut contents)?;
        let mut seen = HashMap::new();
        for (number, line) in contents.split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Line>(line) {
                Ok(entry) => {
                    seen.insert(entry.webhook_id, entry.outcome);
                }
                Err(error) => tracing::warn!(
                    ledger = %path.display(),
                    line = number + 1,
                    %error,
                    "skipping an unreadable ledger line"
                ),
            }
        }
        // End a torn line so the next record starts on a line of its own.
        if contents.last().is_some_and(|&b| b != b'\n') {
            file.write_all(b"\n")?;
        }
        Ok(Ledger { file, path, seen })
    }

    /// The answer already given to `webhook_id`, if any.
    pub fn get(&self, webhook_id: &str) -> Option<&Outcome> {
        self.seen.get(webhook_id)
    }

    /// Records an answer durably before it is sent.
    pub fn record(&mut self, webhook_id: &str, outcome: Outcome) -> io::Result<()> {
        let mut line = serde_json::to_vec(&Line {
            webhook_id: webhook_id.to_owned(),
            outcome: outcome.clone(),
        })
        .map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()?;
        self.seen.insert(webhook_id.to_owned(), outcome);
        Ok(())
    }

    /// Where the ledger lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(commit: &str) -> Outcome {
        Outcome {
            commit: Some(commit.to_owned()),
            path: "p/a--1.xml".to_owned(),
            action: Action::Upsert,
            changed: true,
        }
    }

    #[test]
    fn survives_reopening_and_skips_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path()).unwrap();
        assert_eq!(ledger.get("msg_1"), None);
        ledger.record("msg_1", outcome("abc")).unwrap();
        ledger.record("msg_2", outcome("def")).unwrap();
        assert_eq!(ledger.get("msg_1"), Some(&outcome("abc")));
        drop(ledger);

        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LEDGER_FILE))
            .unwrap();
        file.write_all(br#"{"webhook_id":"msg_3","comm"#).unwrap();

        let mut reopened = Ledger::open(dir.path()).unwrap();
        assert_eq!(reopened.get("msg_1"), Some(&outcome("abc")));
        assert_eq!(reopened.get("msg_2"), Some(&outcome("def")));
        assert_eq!(reopened.get("msg_3"), None);
        reopened.record("msg_4", outcome("fed")).unwrap();
        drop(reopened);

        let again = Ledger::open(dir.path()).unwrap();
        assert_eq!(again.get("msg_4"), Some(&outcome("fed")));
        assert_eq!(again.get("msg_1"), Some(&outcome("abc")));
    }
}
