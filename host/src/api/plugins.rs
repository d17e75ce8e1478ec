//! `/v1/plugins`: list the loaded plugins and upload new versions with their
//! limits. Plugins are shared by every tenant, hence admin tokens scoped to
//! `*` only.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{ApiQuery, Id, PluginAdmin, RawBody};
use super::{ApiState, List};
use crate::app::App;
use crate::ids::PluginName;
use crate::plugin::PluginLimits;
use crate::registry::{PluginInfo, parse_limits};

async fn list(State(app): State<App>, _: PluginAdmin) -> Result<Json<List<PluginInfo>>, ApiError> {
    let data = app.list_plugins()?;
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
) -> Result<(StatusCode, Json<PluginInfo>), ApiError> {
    let ApiQuery(query) = query?;
    let limits = query.limits()?;
    let (info, created) = app.put_plugin(&name, wasm, limits).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(info)))
}

pub(super) fn router() -> Router<ApiState> {
    Router::new()
        .route("/v1/plugins", get(list))
        .route("/v1/plugins/{id}", put(upload))
}
