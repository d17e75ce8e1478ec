//! The first-start admin token and the data directory's permissions.
//!
//! With no `[[auth.tokens]]` and no `[auth] open = true`, `serve` must not open
//! the API. On its first start it makes an admin token over every tenant,
//! hands it back once for printing, and keeps only its SHA-256 in
//! [`DIGEST_FILE`] (mode 0600) in the data directory; later starts read the
//! digest and print nothing. Deleting the file makes a new token at the next
//! start.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::auth::{TokenDigest, digest};

/// The file, inside the data directory, holding the token's hex SHA-256.
pub const DIGEST_FILE: &str = "admin-token.sha256";

/// What the first-start token looks like before its random part.
pub const PREFIX: &str = "hs_";

/// Why the first-start token could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    /// The data directory or the digest file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The digest file holds something else than 64 hex digits.
    #[error(
        "{0} does not hold a SHA-256 in hex; delete it to make a new admin token at the next start"
    )]
    Corrupt(PathBuf),
}

/// The digest to accept, and the token itself when it was made just now.
#[derive(Debug)]
pub struct AdminToken {
    /// The SHA-256 of the token.
    pub digest: TokenDigest,
    /// The token, only on the start that made it: print it once.
    pub created: Option<String>,
}

/// Creates the data directory with mode 0700 when it does not exist yet
/// (and its missing parents, with the same mode). An existing directory keeps
/// the mode its owner gave it.
pub fn create_data_dir(dir: &Path) -> Result<(), AdminTokenError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| AdminTokenError::Io {
            path: dir.to_owned(),
            source,
        })
}

/// Reads the digest in `data_dir`, or makes a token and stores its digest.
pub fn load_or_create(data_dir: &Path) -> Result<AdminToken, AdminTokenError> {
    let path = data_dir.join(DIGEST_FILE);
    let io = |source| AdminTokenError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mut digest = TokenDigest::default();
            hex::decode_to_slice(text.trim(), &mut digest)
                .map_err(|_| AdminTokenError::Corrupt(path.clone()))?;
            Ok(AdminToken {
                digest,
                created: None,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = format!("{PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()));
            let digest = digest(token.as_bytes());
            // create_new: two servers starting on one directory cannot both
            // believe their token is the one kept.
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io)?;
            file.write_all(format!("{}\n", hex::encode(digest)).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io)?;
            Ok(AdminToken {
                digest,
                created: Some(token),
            })
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_first_start_makes_a_token_and_later_starts_read_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a/data");
        create_data_dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&dir.path().join("a")), 0o700);

        let first = load_or_create(&data).unwrap();
        let token = first.created.expect("a token on the first start");
        assert!(token.starts_with(PREFIX) && token.len() == PREFIX.len() + 64);
        assert_eq!(first.digest, digest(token.as_bytes()));
        let file = data.join(DIGEST_FILE);
        assert_eq!(mode(&file), 0o600);
        assert!(!std::fs::read_to_string(&file).unwrap().contains(&token));

        let second = load_or_create(&data).unwrap();
        assert_eq!(second.created, None);
        assert_eq!(second.digest, first.digest);
    }

    #[test]
    fn a_corrupt_digest_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DIGEST_FILE), "not hex").unwrap();
        let err = load_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains(DIGEST_FILE), "{err}");
    }
}
