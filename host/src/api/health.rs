//! Liveness and metrics: the two routes that need no token.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;

use super::ApiState;
use crate::app::App;

/// The Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

async fn metrics(State(app): State<App>) -> impl IntoResponse {
    ([(CONTENT_TYPE, PROMETHEUS_TEXT)], app.metrics_text())
}

pub(super) fn router() -> Router<ApiState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}
