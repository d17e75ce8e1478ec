//! `/v1/plugins`: list the loaded plugins and upload new versions with their
//! limits, and the shape they give back. Plugins are shared by every tenant,
//! hence admin tokens scoped to `*` only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{ApiQuery, Id, PluginAdmin, RawBody};
use super::{ApiState, List};
use crate::app::App;
use crate::ids::PluginName;
use crate::plugin::PluginLimits;
use crate::registry::{PluginInfo, parse_limits};
use crate::store::PluginSource;

/// A named plugin and the version its name resolves to.
#[derive(Debug, Serialize, ToSchema)]
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

#[utoipa::path(
    get,
    path = "/v1/plugins",
    tag = "plugins",
    responses(
        (status = 200, body = List<PluginOut>),
    ),
)]
async fn list(State(app): State<App>, _: PluginAdmin) -> Result<Json<List<PluginOut>>, ApiError> {
    let data = app.list_plugins()?.into_iter().map(Into::into).collect();
    Ok(Json(List { data }))
}

/// `?timeout=250ms&memory=64MiB`, written as in the config file; unknown
/// parameters are refused so a misspelt limit is not silently the default.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    /// Per-call timeout, e.g. `250ms`; at most 10s.
    timeout: Option<String>,
    /// Memory cap, e.g. `64MiB`; at most 1GiB.
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
#[utoipa::path(
    put,
    path = "/v1/plugins/{id}",
    tag = "plugins",
    params(super::openapi::PluginPath, UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/wasm", description = "The compiled component (wasm32-wasip2)."),
    responses(
        (status = 201, description = "A new name.", body = PluginOut),
        (status = 200, description = "A replaced version.", body = PluginOut),
        (status = 409, description = "Declared in the config file.", body = super::openapi::ErrorBody),
    ),
)]
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

pub(super) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(upload))
}
