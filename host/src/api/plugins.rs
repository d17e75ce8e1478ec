//! `/v1/plugins`: list the loaded plugins and upload new versions with their
//! limits, and the shape they give back. Plugins are shared by every tenant,
//! hence admin tokens scoped to `*` only.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{ApiQuery, Id, PluginAdmin, RawBody};
use super::{ApiState, List};
use crate::app::App;
use crate::ids::PluginName;
use crate::plugin::PluginLimits;
use crate::registry::{PluginInfo, parse_limits};
use crate::store::PluginSource;

/// A named plugin and the version its name resolves to.
#[derive(Debug, Serialize)]
pub struct PluginOut {
    pub name: PluginName,
    /// Of the component's bytes.
    pub sha256: String,
    /// The component's size in bytes.
    pub size: usize,
    /// `config` when declared in the config file (read-only here), `api` when uploaded.
    pub source: PluginSource,
    pub timeout_ms: u64,
    pub memory_bytes: u64,
}

impl From<PluginInfo> for PluginOut {
    fn from(p: PluginInfo) -> Self {
        PluginOut {
            name: p.name,
            sha256: p.sha256,
            size: p.size,
            source: p.source,
            timeout_ms: p.timeout_ms,
            memory_bytes: p.memory_bytes,
        }
    }
}

async fn list(State(app): State<App>, _: PluginAdmin) -> Result<Json<List<PluginOut>>, ApiError> {
    let data = app.list_plugins()?.into_iter().map(Into::into).collect();
    Ok(Json(List { data }))
}

/// `?timeout=250ms&memory=64MiB`, written as in the config file; unknown
/// parameters are refused so a misspelt limit is not silently the default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    timeout: Option<String>,
    memory: Option<String>,
}

impl UploadQuery {
    fn limits(&self) -> Result<PluginLimits, ApiError> {
        parse_limits(self.timeout.as_deref(), self.memory.as_deref())
            .map_err(|e| ApiError::invalid_request(e.to_string()))
    }
}

/// 201 for a new name, 200 for a replaced one; 422 when a limit is invalid
/// or the bytes are not a component exporting the transform interface.
///
/// A bad query is reported only once the body is read: answering while
/// the client is still sending it makes the server close the connection,
/// which a keep-alive client may already be reusing for its next request.
async fn upload(
    State(app): State<App>,
    _: PluginAdmin,
    Id(name): Id<PluginName>,
    query: Result<ApiQuery<UploadQuery>, ApiError>,
    RawBody(wasm): RawBody,
) -> Result<(StatusCode, Json<PluginOut>), ApiError> {
    let ApiQuery(query) = query?;
    let limits = query.limits()?;
    let (info, created) = app.put_plugin(&name, wasm, limits).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(info.into())))
}

pub(super) fn router() -> Router<ApiState> {
    Router::new()
        .route("/v1/plugins", get(list))
        .route("/v1/plugins/{id}", put(upload))
}
