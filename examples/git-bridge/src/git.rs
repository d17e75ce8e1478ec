//! The Git work tree the bridge owns, driven through the `git` command line. Every call runs
//! with the system and global Git configuration switched off and with hooks, signing and line
//! ending conversion disabled, so a commit depends only on the request and the repository.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::request::{Author, RepoPath};

/// The branch a new repository starts on.
pub const INITIAL_BRANCH: &str = "main";

/// Why a Git operation failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("could not run git {args}: {source}")]
    Spawn { args: String, source: io::Error },
    #[error("git {args} failed ({status}): {stderr}")]
    Failed {
        args: String,
        status: String,
        stderr: String,
    },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0:?} is not a valid branch name")]
    InvalidBranch(String),
    #[error("{0} passes through a symbolic link or a non-directory")]
    UnsafePath(String),
}

/// The identity and time a commit is recorded with.
#[derive(Debug, Clone)]
pub struct Signature<'a> {
    pub author: &'a Author,
    /// Unix seconds, used for both the author and the committer date.
    pub time: u64,
}

/// A non-bare repository with a work tree.
#[derive(Debug)]
pub struct Repo {
    work_tree: PathBuf,
    git_dir: PathBuf,
}

impl Repo {
    /// Opens the repository at `dir`, or creates `dir` and runs `git init -b main` there when it
    /// holds no `.git` yet.
    pub fn open_or_init(dir: &Path) -> Result<Repo, GitError> {
        fs::create_dir_all(dir).map_err(|source| GitError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let work_tree = dir.canonicalize().map_err(|source| GitError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let mut repo = Repo {
            git_dir: work_tree.join(".git"),
            work_tree,
        };
        if !repo.git_dir.exists() {
            repo.run(["init", "-q", "-b", INITIAL_BRANCH])?;
            tracing::info!(repo = %repo.work_tree.display(), "initialised a new repository");
        }
        let git_dir = repo.stdout(["rev-parse", "--absolute-git-dir"])?;
        repo.git_dir = PathBuf::from(git_dir);
        Ok(repo)
    }

    /// The Git directory, where the bridge keeps its ledger.
    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    /// The commit HEAD points to, or `None` on an unborn branch.
    pub fn head(&self) -> Result<Option<String>, GitError> {
        let output = self.output(["rev-parse", "-q", "--verify", "HEAD^{commit}"])?;
        Ok(output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned()))
    }

    /// The branch HEAD points to, or `None` when HEAD is detached.
    pub fn branch_name(&self) -> Result<Option<String>, GitError> {
        let output = self.output(["symbolic-ref", "-q", "--short", "HEAD"])?;
        Ok(output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned()))
    }

    /// Drops whatever an interrupted request left behind: tracked files go back to HEAD (the
    /// index is emptied on an unborn branch) and untracked files under `pathspec` are removed.
    pub fn restore(&self, pathspec: &str) -> Result<(), GitError> {
        if self.head()?.is_some() {
            self.run(["reset", "-q", "--hard", "HEAD"])?;
        } else {
            self.run(["read-tree", "--empty"])?;
        }
        self.run(["clean", "-q", "-f", "-d", "--", pathspec])
    }

    /// Checks out `branch`, creating it from the current HEAD when it does not exist yet.
    pub fn switch_to(&self, branch: &str) -> Result<(), GitError> {
        let valid = self
            .output(["check-ref-format", "--branch", branch])?
            .status
            .success();
        if !valid || branch.starts_with('-') {
            return Err(GitError::InvalidBranch(branch.to_owned()));
        }
        if self.branch_name()?.as_deref() == Some(branch) {
            return Ok(());
        }
        let full_ref = format!("refs/heads/{branch}");
        let exists = self
            .output(["rev-parse", "-q", "--verify", &full_ref])?
            .status
            .success();
        if exists {
            self.run(["switch", "-q", branch])
        } else if self.head()?.is_none() {
            self.run(["symbolic-ref", "HEAD", &full_ref])
        } else {
            self.run(["switch", "-q", "-c", branch])
        }
    }

    /// Writes `content` byte for byte at `path`, creating its folders.
    pub fn write_file(&self, path: &RepoPath, content: &[u8]) -> Result<(), GitError> {
        let dir = self
            .checked_parent(path, true)?
            .expect("created when missing");
        let full = dir.join(path.file_name());
        fs::write(&full, content).map_err(|source| GitError::Io { path: full, source })
    }

    /// Removes the file at `path`; reports whether there was one.
    pub fn remove_file(&self, path: &RepoPath) -> Result<bool, GitError> {
        let Some(dir) = self.checked_parent(path, false)? else {
            return Ok(false);
        };
        let full = dir.join(path.file_name());
        match fs::remove_file(&full) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(GitError::Io { path: full, source }),
        }
    }

    /// Removes every file in `path`'s folder whose name ends with `suffix`, except `keep`.
    /// Returns how many it removed.
    pub fn remove_matching(
        &self,
        path: &RepoPath,
        suffix: &str,
        keep: Option<&str>,
    ) -> Result<usize, GitError> {
        let Some(dir) = self.checked_parent(path, false)? else {
            return Ok(0);
        };
        let io_error = |source| GitError::Io {
            path: dir.clone(),
            source,
        };
        let mut removed = 0;
        for entry in fs::read_dir(&dir).map_err(io_error)? {
            let entry = entry.map_err(io_error)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let is_file = entry.file_type().map_err(io_error)?.is_file();
            if is_file && name.ends_with(suffix) && Some(name) != keep {
                fs::remove_file(entry.path()).map_err(io_error)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Stages every change under `pathspec`; reports whether the index now differs from HEAD.
    pub fn stage(&self, pathspec: &str) -> Result<bool, GitError> {
        self.run(["add", "-A", "--", pathspec])?;
        let diff = self.output(["diff", "--cached", "--quiet"])?;
        match diff.status.code() {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            _ => Err(failed(["diff", "--cached", "--quiet"], &diff)),
        }
    }

    /// Commits the index and returns the new commit id.
    pub fn commit(&self, message: &str, signature: &Signature<'_>) -> Result<String, GitError> {
        let date = format!("@{} +0000", signature.time);
        let author = signature.author;
        let mut command = self.command();
        command
            .args(["-c", &format!("user.name={}", author.name)])
            .args(["-c", &format!("user.email={}", author.email)])
            .args(["commit", "-q", "--no-verify", "--cleanup=whitespace", "-m"])
            .arg(message)
            .env("GIT_AUTHOR_NAME", &author.name)
            .env("GIT_AUTHOR_EMAIL", &author.email)
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_NAME", &author.name)
            .env("GIT_COMMITTER_EMAIL", &author.email)
            .env("GIT_COMMITTER_DATE", &date);
        check(&["commit"], command.output())?;
        self.head()?.ok_or_else(|| GitError::Failed {
            args: "commit".to_owned(),
            status: "exit status: 0".to_owned(),
            stderr: "HEAD is unborn after committing".to_owned(),
        })
    }

    /// `path`'s folder, after checking that no existing component is a symbolic link or a file,
    /// so neither a write nor a removal can leave the work tree. A missing folder is created when
    /// `create` is set, else the answer is `None`.
    fn checked_parent(&self, path: &RepoPath, create: bool) -> Result<Option<PathBuf>, GitError> {
        let mut dir = self.work_tree.clone();
        let (_, parents) = path
            .segments()
            .split_last()
            .expect("a parsed path has a segment");
        for segment in parents {
            dir.push(segment);
            match fs::symlink_metadata(&dir) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => return Err(GitError::UnsafePath(path.to_string())),
                Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&dir).map_err(|source| GitError::Io {
                        path: dir.clone(),
                        source,
                    })?;
                }
                Err(source) => return Err(GitError::Io { path: dir, source }),
            }
        }
        let target = dir.join(path.file_name());
        if fs::symlink_metadata(&target).is_ok_and(|meta| !meta.is_file()) {
            return Err(GitError::UnsafePath(path.to_string()));
        }
        Ok(Some(dir))
    }

    fn command(&self) -> Command {
        let mut command = Command::new("git");
        command
            .arg("-C")
            .arg(&self.work_tree)
            .args(["-c", "core.autocrlf=false"])
            .args(["-c", "core.safecrlf=false"])
            .args(["-c", "commit.gpgsign=false"])
            .args(["-c", "core.hooksPath=/dev/null"])
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE");
        command
    }

    fn output<I, S>(&self, args: I) -> Result<Output, GitError>
    where
        I: IntoIterator<Item = S> + Clone,
        S: AsRef<OsStr>,
    {
        self.command()
            .args(args.clone())
            .output()
            .map_err(|source| GitError::Spawn {
                args: join(args),
                source,
            })
    }

    fn run<I, S>(&self, args: I) -> Result<(), GitError>
    where
        I: IntoIterator<Item = S> + Clone,
        S: AsRef<OsStr>,
    {
        let output = self.output(args.clone())?;
        if output.status.success() {
            Ok(())
        } else {
            Err(failed(args, &output))
        }
    }

    fn stdout<I, S>(&self, args: I) -> Result<String, GitError>
    where
        I: IntoIterator<Item = S> + Clone,
        S: AsRef<OsStr>,
    {
        let output = self.output(args.clone())?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            Err(failed(args, &output))
        }
    }
}

fn join<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    args.into_iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn failed<I, S>(args: I, output: &Output) -> GitError
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    GitError::Failed {
        args: join(args),
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    }
}

fn check(args: &[&str], output: io::Result<Output>) -> Result<(), GitError> {
    let output = output.map_err(|source| GitError::Spawn {
        args: args.join(" "),
        source,
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(failed(args, &output))
    }
}
