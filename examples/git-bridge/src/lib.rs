//! git-bridge: an example hookshape receiver that turns the `git-commit` plugin's signed commit
//! requests into commits in a local Git repository it owns.
//!
//! `POST /` takes one request (see [`request`]). The Standard Webhooks signature is checked
//! first (401 otherwise); the request is then re-validated (422), and applied under one lock so
//! concurrent deliveries never race Git. Deliveries are idempotent on `webhook-id`: the first
//! answer is kept in [`ledger`] and given again to every retry. Answers are
//! `{"commit", "path", "action", "changed", "replayed"}`: 201 for a new commit, 200 for a replay
//! or a request that changed nothing. Errors are `{"error": {"code", "message"}}`.
//!
//! The repository belongs to the bridge: each request first resets tracked files to HEAD and
//! removes untracked files in the folder it writes to, so an interrupted request leaves nothing
//! behind for the next one to commit by mistake.

mod git;
pub mod ledger;
pub mod request;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use hookshape_signing::Secret;
use serde::Serialize;
use serde_json::json;

use crate::git::{GitError, Repo, Signature};
use crate::ledger::{Ledger, Outcome};
use crate::request::{Change, CommitRequest, RawCommitRequest, RequestError};

/// Largest accepted request body: a 1 MiB event, JSON-escaped, with room to spare.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// How the bridge is set up.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// The work tree; created and `git init`ed when it holds no repository.
    pub repo: PathBuf,
    /// The subscription's signing secret.
    pub secret: Secret,
    /// How far `webhook-timestamp` may be from now.
    pub tolerance: Duration,
}

/// Why the bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The repository could not be opened or checked.
    #[error("opening the repository: {0}")]
    Git(#[from] GitError),
    /// The delivery ledger could not be opened.
    #[error("opening the delivery ledger: {0}")]
    Ledger(#[from] std::io::Error),
}

/// The receiver: the secret and the repository behind one lock.
#[derive(Debug)]
pub struct Bridge {
    secret: Secret,
    tolerance: Duration,
    state: Mutex<Workspace>,
}

#[derive(Debug)]
struct Workspace {
    repo: Repo,
    ledger: Ledger,
}

/// What one delivery got back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    /// What was done, or found done.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Whether this was a retry of a delivery already applied.
    pub replayed: bool,
}

impl Answer {
    fn status(&self) -> StatusCode {
        if self.outcome.changed && !self.replayed {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        }
    }
}

impl Bridge {
    /// Opens (or initialises) the repository and loads the delivery ledger.
    pub fn open(config: BridgeConfig) -> Result<Bridge, OpenError> {
        let repo = Repo::open_or_init(&config.repo)?;
        let ledger = Ledger::open(repo.git_dir())?;
        tracing::info!(
            repo = %config.repo.display(),
            ledger = %ledger.path().display(),
            "repository ready"
        );
        Ok(Bridge {
            secret: config.secret,
            tolerance: config.tolerance,
            state: Mutex::new(Workspace { repo, ledger }),
        })
    }

    /// The HTTP interface: `POST /` for commit requests, `GET /healthz`.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/", post(receive))
            .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
            .fallback(|| async {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
            })
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self)
    }

    /// Checks the Standard Webhooks headers; returns the message id and its Unix time.
    fn authenticate(&self, headers: &HeaderMap, body: &[u8]) -> Result<(String, u64), ApiError> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "missing_signature",
                        format!("the {name} header is missing or not text"),
                    )
                })
        };
        let id = header(hookshape_signing::HEADER_ID)?;
        let timestamp = header(hookshape_signing::HEADER_TIMESTAMP)?;
        let signature = header(hookshape_signing::HEADER_SIGNATURE)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        hookshape_signing::verify(
            &self.secret,
            id,
            timestamp,
            signature,
            body,
            now,
            self.tolerance,
        )
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", e.to_string()))?;
        let time = timestamp
            .trim()
            .parse()
            .expect("verify accepted the timestamp as Unix seconds");
        Ok((id.to_owned(), time))
    }

    /// Applies one verified request, or gives back the answer an earlier delivery of the same
    /// id got. Blocking: runs Git.
    fn apply(
        &self,
        webhook_id: &str,
        time: u64,
        request: &CommitRequest,
    ) -> Result<Answer, ApiError> {
        let mut workspace = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(outcome) = workspace.ledger.get(webhook_id) {
            return Ok(Answer {
                outcome: outcome.clone(),
                replayed: true,
            });
        }
        let pathspec = request.path.parent_pathspec();
        let outcome = workspace.commit(request, time).inspect_err(|_| {
            if let Err(error) = workspace.repo.restore(&pathspec) {
                tracing::warn!(%error, "could not clean up after a failed request");
            }
        })?;
        workspace
            .ledger
            .record(webhook_id, outcome.clone())
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ledger_failed",
                    format!("the commit was made but could not be recorded: {e}"),
                )
            })?;
        Ok(Answer {
            outcome,
            replayed: false,
        })
    }
}

impl Workspace {
    fn commit(&mut self, request: &CommitRequest, time: u64) -> Result<Outcome, GitError> {
        let repo = &self.repo;
        let path = &request.path;
        let pathspec = path.parent_pathspec();
        repo.restore(&pathspec)?;
        repo.switch_to(&request.branch)?;
        let touched = match &request.change {
            Change::Upsert(content) => {
                repo.write_file(path, content.as_bytes())?;
                repo.remove_matching(path, &request.project_suffix, Some(path.file_name()))?;
                true
            }
            Change::Delete => {
                let removed = repo.remove_file(path)?;
                repo.remove_matching(path, &request.project_suffix, None)? > 0 || removed
            }
        };
        let changed = touched && repo.stage(&pathspec)?;
        let commit = if changed {
            let message = match request.message.trim() {
                "" => format!("{} {}", request.change.action(), path),
                _ => request.message.clone(),
            };
            let signature = Signature {
                author: &request.author,
                time,
            };
            Some(repo.commit(&message, &signature)?)
        } else {
            repo.head()?
        };
        Ok(Outcome {
            commit,
            path: path.to_string(),
            action: request.change.action(),
            changed,
        })
    }
}

async fn receive(
    State(bridge): State<Arc<Bridge>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        ApiError::new(rejection.status(), "unreadable_body", rejection.body_text())
    })?;
    let (webhook_id, time) = bridge.authenticate(&headers, &body)?;
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()))?;
    let raw: RawCommitRequest = serde_json::from_value(value).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            e.to_string(),
        )
    })?;
    let request = CommitRequest::try_from(raw)?;

    let event_id = request.event_id.clone();
    let event_type = request.event_type.clone();
    let id = webhook_id.clone();
    let answer = tokio::task::spawn_blocking(move || bridge.apply(&id, time, &request))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the commit task failed: {e}"),
            )
        })??;
    tracing::info!(
        webhook_id,
        event_id,
        event_type,
        action = %answer.outcome.action,
        path = %answer.outcome.path,
        commit = answer.outcome.commit.as_deref(),
        changed = answer.outcome.changed,
        replayed = answer.replayed,
        "delivery applied"
    );
    Ok((answer.status(), Json(answer)).into_response())
}

/// An error answer: `{"error": {"code", "message"}}` with its status.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> Self {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            error.code(),
            error.to_string(),
        )
    }
}

impl From<GitError> for ApiError {
    fn from(error: GitError) -> Self {
        let (status, code) = match error {
            GitError::InvalidBranch(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_branch"),
            GitError::UnsafePath(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_path"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "git_failed"),
        };
        ApiError::new(status, code, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        } else {
            tracing::warn!(code = self.code, message = %self.message, "request refused");
        }
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}
