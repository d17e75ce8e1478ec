//! `/v1/plugins`: list the loaded plugins and upload new versions. Plugins
//! are shared by every tenant, hence admin tokens scoped to `*` only.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};

use super::error::ApiError;
use super::extract::{Id, PluginAdmin, RawBody};
use super::{ApiState, List};
use crate::app::App;
use crate::ids::PluginName;
use crate::registry::PluginInfo;

async fn list(State(app): State<App>, _: PluginAdmin) -> Result<Json<List<PluginInfo>>, ApiError> {
    let data = app.list_plugins()?;
    Ok(Json(List { data }))
}

/// 201 for a new name, 200 for a replaced one; 422 when the bytes are not a
/// component exporting the transform interface.
async fn upload(
    State(app): State<App>,
    _: PluginAdmin,
    Id(name): Id<PluginName>,
    RawBody(wasm): RawBody,
) -> Result<(StatusCode, Json<PluginInfo>), ApiError> {
    let (info, created) = app.put_plugin(&name, wasm).await?;
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
