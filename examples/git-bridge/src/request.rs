//! The commit request the `git-commit` plugin sends, and its re-validation. The bridge trusts
//! nothing in it: the path, project id, author and message are checked here, and the branch by
//! Git itself, before anything touches the repository.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest accepted repository path, in bytes.
const MAX_PATH_LEN: usize = 1024;
/// Longest accepted path segment, in bytes (the usual file-name limit).
const MAX_SEGMENT_LEN: usize = 255;
/// Longest file id built from a project id, as the plugin bounds it.
const MAX_FILE_ID_LEN: usize = 128;
/// Longest accepted author name or email.
const MAX_IDENT_LEN: usize = 200;

/// What to do with the project's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Write the file, creating or replacing it.
    Upsert,
    /// Remove the file.
    Delete,
}

impl Action {
    /// The action's name as it is spelled on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Upsert => "upsert",
            Action::Delete => "delete",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The commit's author, as sent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Author {
    /// The author's name.
    pub name: String,
    /// The author's email.
    pub email: String,
}

/// The request body as it arrives, before validation.
#[derive(Debug, Clone, Deserialize)]
pub struct RawCommitRequest {
    /// Upsert or delete.
    pub action: Action,
    /// The design-center project the file belongs to.
    pub project_id: String,
    /// The file's path in the repository.
    pub path: String,
    /// The file's text; required for an upsert.
    #[serde(default)]
    pub content: Option<String>,
    /// The commit message.
    #[serde(default)]
    pub message: String,
    /// The commit's author.
    pub author: Author,
    /// The branch to commit on.
    pub branch: String,
    /// The hookshape event behind the request, for the logs.
    #[serde(default)]
    pub event_id: Option<String>,
    /// That event's type, for the logs.
    #[serde(default)]
    pub event_type: Option<String>,
}

/// A request whose every field has been checked. The branch is checked later, by
/// `git check-ref-format`, because Git is the authority on its own ref names.
#[derive(Debug, Clone)]
pub struct CommitRequest {
    /// What happens to the file.
    pub change: Change,
    /// The file's checked path.
    pub path: RepoPath,
    /// The file-name suffix shared by every name this project's file has had: `--{file id}.xml`.
    pub project_suffix: String,
    /// The commit message, free of NUL characters.
    pub message: String,
    /// The commit's author, checked.
    pub author: Author,
    /// The branch to commit on, not yet checked.
    pub branch: String,
    /// The hookshape event behind the request, for the logs.
    pub event_id: Option<String>,
    /// That event's type, for the logs.
    pub event_type: Option<String>,
}

/// What happens to the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Write these bytes.
    Upsert(String),
    /// Remove the file.
    Delete,
}

impl Change {
    /// The action this change performs.
    pub fn action(&self) -> Action {
        match self {
            Change::Upsert(_) => Action::Upsert,
            Change::Delete => Action::Delete,
        }
    }
}

/// Why a request was refused; each maps to a 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The path is not a safe path inside the work tree.
    #[error("path {path:?} {reason}")]
    Path {
        /// The path as sent.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The project id cannot make a file-name suffix.
    #[error("project_id {0:?} is empty or too long for a file name")]
    ProjectId(String),
    /// An upsert came without `content`.
    #[error("an upsert needs \"content\"")]
    MissingContent,
    /// The author's name or email is not acceptable.
    #[error("author.{field} {reason}")]
    Author {
        /// `name` or `email`.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The commit message holds a NUL character.
    #[error("message holds a NUL character")]
    Message,
}

impl RequestError {
    /// The machine-readable code in the error body.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::Path { .. } => "invalid_path",
            _ => "invalid_request",
        }
    }
}

impl TryFrom<RawCommitRequest> for CommitRequest {
    type Error = RequestError;

    fn try_from(raw: RawCommitRequest) -> Result<Self, Self::Error> {
        let path = RepoPath::parse(&raw.path)?;
        let project_suffix = format!("--{}.xml", file_id(&raw.project_id)?);
        let change = match raw.action {
            Action::Upsert => Change::Upsert(raw.content.ok_or(RequestError::MissingContent)?),
            Action::Delete => Change::Delete,
        };
        check_ident("name", &raw.author.name)?;
        check_ident("email", &raw.author.email)?;
        if raw.message.contains('\0') {
            return Err(RequestError::Message);
        }
        Ok(CommitRequest {
            change,
            path,
            project_suffix,
            message: raw.message,
            author: raw.author,
            branch: raw.branch,
            event_id: raw.event_id,
            event_type: raw.event_type,
        })
    }
}

/// A relative, `/`-separated path that stays inside the work tree and out of Git's own files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPath {
    segments: Vec<String>,
}

impl RepoPath {
    /// Refuses absolute paths, `.` and `..` segments, empty segments, backslashes, control
    /// characters, over-long names, and any segment starting with `.git` in any case (the Git
    /// directory itself, and `.gitattributes`, `.gitmodules` and friends that change how Git
    /// treats the tree).
    pub fn parse(raw: &str) -> Result<RepoPath, RequestError> {
        let fail = |reason| {
            Err(RequestError::Path {
                path: raw.to_owned(),
                reason,
            })
        };
        if raw.is_empty() {
            return fail("is empty");
        }
        if raw.len() > MAX_PATH_LEN {
            return fail("is too long");
        }
        if raw.starts_with('/') {
            return fail("is absolute");
        }
        if raw.chars().any(char::is_control) {
            return fail("holds a control character");
        }
        if raw.contains('\\') {
            return fail("holds a backslash");
        }
        let mut segments = Vec::new();
        for segment in raw.split('/') {
            match segment {
                "" => return fail("has an empty segment"),
                "." | ".." => return fail("has a '.' or '..' segment"),
                s if s.len() > MAX_SEGMENT_LEN => return fail("has a segment that is too long"),
                s if s
                    .get(..4)
                    .is_some_and(|head| head.eq_ignore_ascii_case(".git")) =>
                {
                    return fail("has a segment starting with .git");
                }
                s => segments.push(s.to_owned()),
            }
        }
        Ok(RepoPath { segments })
    }

    /// The path's segments, first to last.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The last segment.
    pub fn file_name(&self) -> &str {
        self.segments.last().expect("a parsed path has a segment")
    }

    /// The folder holding the file, as a Git pathspec: `.` for the repository root.
    pub fn parent_pathspec(&self) -> String {
        match self.segments.split_last() {
            Some((_, [])) | None => ".".to_owned(),
            Some((_, parents)) => parents.join("/"),
        }
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.segments.join("/"))
    }
}

/// The project's part of a file name, as the `git-commit` plugin builds it: the id itself when it
/// holds only `[A-Za-z0-9_-]`, else the hex of its UTF-8 bytes.
pub fn file_id(project_id: &str) -> Result<String, RequestError> {
    let safe = project_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    let encoded: String = if safe {
        project_id.to_owned()
    } else {
        project_id.bytes().map(|b| format!("{b:02x}")).collect()
    };
    if encoded.is_empty() || encoded.len() > MAX_FILE_ID_LEN {
        return Err(RequestError::ProjectId(project_id.to_owned()));
    }
    Ok(encoded)
}

/// Git refuses identities that are empty once it strips punctuation, and `<`, `>` or line
/// breaks would forge the commit header; refuse them here with a clear message instead.
fn check_ident(field: &'static str, value: &str) -> Result<(), RequestError> {
    let fail = |reason| Err(RequestError::Author { field, reason });
    if value.len() > MAX_IDENT_LEN {
        return fail("is too long");
    }
    if value
        .chars()
        .any(|c| c.is_control() || c == '<' || c == '>')
    {
        return fail("holds a control character, '<' or '>'");
    }
    if !value.chars().any(char::is_alphanumeric) {
        return fail("needs at least one letter or digit");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_relative_paths() {
        let path = RepoPath::parse("projects/sales--p1.xml").unwrap();
        assert_eq!(path.segments(), ["projects", "sales--p1.xml"]);
        assert_eq!(path.file_name(), "sales--p1.xml");
        assert_eq!(path.parent_pathspec(), "projects");
        assert_eq!(path.to_string(), "projects/sales--p1.xml");

        let top = RepoPath::parse("x--p1.xml").unwrap();
        assert_eq!(top.parent_pathspec(), ".");
        assert!(RepoPath::parse("a/b/c.d..e/.hidden/gitx/x.git").is_ok());
    }

    #[test]
    fn refuses_hostile_paths() {
        let hostile = [
            "",
            "/etc/passwd",
            "../outside.xml",
            "projects/../../outside.xml",
            "projects/./x.xml",
            "projects//x.xml",
            "projects/",
            ".git/config",
            "a/.git/hooks/pre-commit",
            ".GIT/config",
            ".Git",
            ".gitattributes",
            "a/.gitmodules",
            "a\\..\\b.xml",
            "a\0b.xml",
            "a\nb.xml",
            "a\u{7f}b.xml",
            "a\u{85}b.xml",
        ];
        for raw in hostile {
            let err = RepoPath::parse(raw).unwrap_err();
            assert_eq!(err.code(), "invalid_path", "{raw:?}");
        }
        assert!(RepoPath::parse(&"a".repeat(256)).is_err());
        assert!(RepoPath::parse(&["a"; 600].join("/")).is_err());
    }

    #[test]
    fn file_id_matches_the_plugin() {
        let uuid = "5b7e1c2a-9d3f-4e8b-a1c6-0f2d4b6e8a90";
        assert_eq!(file_id(uuid).unwrap(), uuid);
        assert_eq!(file_id("proj_42").unwrap(), "proj_42");
        assert_eq!(file_id("../x").unwrap(), "2e2e2f78");
        assert_eq!(file_id("é").unwrap(), "c3a9");
        assert!(file_id("").is_err());
        assert!(file_id(&"z".repeat(129)).is_err());
    }

    fn raw(action: Action) -> RawCommitRequest {
        RawCommitRequest {
            action,
            project_id: "p1".into(),
            path: "projects/a--p1.xml".into(),
            content: Some("<project/>".into()),
            message: "m".into(),
            author: Author {
                name: "Ada".into(),
                email: "ada@example.com".into(),
            },
            branch: "main".into(),
            event_id: None,
            event_type: None,
        }
    }

    #[test]
    fn validates_the_whole_request() {
        let ok = CommitRequest::try_from(raw(Action::Upsert)).unwrap();
        assert_eq!(ok.project_suffix, "--p1.xml");
        assert_eq!(ok.change, Change::Upsert("<project/>".into()));

        let delete = CommitRequest::try_from(raw(Action::Delete)).unwrap();
        assert_eq!(
            delete.change,
            Change::Delete,
            "a delete never writes content"
        );
        assert_eq!(delete.change.action(), Action::Delete);

        let mut missing = raw(Action::Upsert);
        missing.content = None;
        assert_eq!(
            CommitRequest::try_from(missing).unwrap_err(),
            RequestError::MissingContent
        );

        for (name, email) in [("", "a@b"), ("...", "a@b"), ("A", "x>y"), ("A\nB", "a@b")] {
            let mut bad = raw(Action::Upsert);
            bad.author = Author {
                name: name.into(),
                email: email.into(),
            };
            let err = CommitRequest::try_from(bad).unwrap_err();
            assert!(
                matches!(err, RequestError::Author { .. }),
                "{name:?} {email:?}"
            );
            assert_eq!(err.code(), "invalid_request");
        }

        let mut nul = raw(Action::Upsert);
        nul.message = "a\0b".into();
        assert_eq!(
            CommitRequest::try_from(nul).unwrap_err(),
            RequestError::Message
        );
    }
}
