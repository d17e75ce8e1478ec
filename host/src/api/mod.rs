//! The HTTP API: routes, authentication and the mapping of application
//! answers to status codes and JSON.
//!
//! Handlers are thin: extract (parse and authorize, see [`extract`]), call
//! the [`App`] façade, map its answer. One file per resource, each with its
//! own `router()` and the types its routes take in and give back (`...In`,
//! `...Patch`, `...Out`, made from and into the model, so an answer shows
//! only what it chooses to); this module merges them, sets the body limits
//! and the request timeout, and answers unknown routes and methods with the
//! same JSON errors as everything else.

mod attempts;
mod connection;
mod console;
mod dry_run;
pub mod error;
mod events;
pub mod extract;
mod health;
pub mod openapi;
mod plugins;
mod subscriptions;
mod tenants;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, Uri};
use axum::routing::get;
use axum::{Extension, Router};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

pub use self::error::ApiError;
use self::extract::BodyLimit;
use crate::app::App;
use crate::auth::Authenticator;

/// Body limit of JSON routes other than event ingest.
const JSON_BODY_LIMIT: usize = 1024 * 1024;

/// Body limit of plugin uploads: compiled components are a few MiB at most.
const PLUGIN_BODY_LIMIT: usize = 32 * 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
struct ApiState {
    app: App,
    auth: Arc<Authenticator>,
}

impl FromRef<ApiState> for App {
    fn from_ref(state: &ApiState) -> App {
        state.app.clone()
    }
}

impl FromRef<ApiState> for Arc<Authenticator> {
    fn from_ref(state: &ApiState) -> Arc<Authenticator> {
        Arc::clone(&state.auth)
    }
}

/// A list answer: `{"data": [...]}`, leaving room for paging fields.
#[derive(Debug, Serialize, ToSchema)]
struct List<T> {
    data: Vec<T>,
}

/// Every `/v1` route, with its body limit and its documentation.
fn v1_routes(max_event_bytes: usize) -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .merge(with_body_limit(events::router(), max_event_bytes))
        .merge(with_body_limit(subscriptions::router(), JSON_BODY_LIMIT))
        .merge(with_body_limit(dry_run::router(), JSON_BODY_LIMIT))
        .merge(with_body_limit(attempts::router(), JSON_BODY_LIMIT))
        .merge(with_body_limit(plugins::router(), PLUGIN_BODY_LIMIT))
        .merge(tenants::router())
}

/// The OpenAPI document of every `/v1` route, as `GET /openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi::finish(v1_routes(JSON_BODY_LIMIT).split_for_parts().1)
}

/// Every route of the contract's HTTP API, bound to `app`, letting in whom
/// `auth` lets in.
pub fn router(app: App, auth: Authenticator) -> Router {
    let auth = Arc::new(auth);
    let max_event_bytes = app.config().server.max_event_bytes;
    let request_timeout = app.config().server.request_timeout;
    let (v1, doc) = v1_routes(max_event_bytes).split_for_parts();
    let doc = openapi::finish(doc)
        .to_json()
        .expect("the OpenAPI document serializes");
    let routes = Router::new()
        .merge(health::router())
        .route(
            "/openapi.json",
            get(move || async move { ([(CONTENT_TYPE, "application/json")], doc) }),
        )
        .merge(v1)
        .merge(console::router());
    with_json_fallbacks(routes)
        .layer(axum::middleware::from_fn(connection::close_if_body_unread))
        .layer(axum::middleware::from_fn_with_state(
            request_timeout,
            connection::answer_408_past,
        ))
        .with_state(ApiState { app, auth })
}

/// Caps request bodies on every route of `router` and tells the extractors
/// the cap, for their 413 message.
fn with_body_limit<S>(router: OpenApiRouter<S>, bytes: usize) -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    router
        .layer(DefaultBodyLimit::max(bytes))
        .layer(Extension(BodyLimit(bytes)))
}

/// JSON 404 for unknown paths and 405 (axum keeps the `Allow` header) for
/// known paths with another method. Call after every route is added: the 405
/// fallback is attached to the routes present.
fn with_json_fallbacks<S>(router: Router<S>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router
        .fallback(|method: Method, uri: Uri| async move {
            ApiError::no_route(method.as_str(), uri.path())
        })
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            ApiError::method_not_allowed(method.as_str(), uri.path())
        })
}

#[cfg(test)]
mod tests {
    //! The router's plumbing, exercised without an [`App`]: the extractors,
    //! body limits and fallbacks on stand-in routes.

    use axum::Json;
    use axum::body::Body;
    use axum::http::{HeaderMap, Request, StatusCode, header};
    use axum::routing::{get, post, put};
    use http_body_util::BodyExt;
    use serde::Deserialize;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::extract::{
        ApiJson, ApiQuery, Id, PluginAdmin, RawBody, TenantAdmin, TenantPublisher,
    };
    use super::*;
    use crate::config::{Role, TenantScope, TokenConfig};
    use crate::ids::{EventId, PluginName};

    const ADMIN: &str = "Bearer admin-token";
    const PUBLISHER: &str = "Bearer acme-publisher";
    const LIMIT: usize = 64;

    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "type")]
        event_type: String,
        #[serde(rename = "payload")]
        _payload: Value,
    }

    #[derive(Deserialize)]
    struct Page {
        limit: Option<usize>,
    }

    fn stand_in() -> Router {
        let auth = Arc::new(Authenticator::new(&[
            TokenConfig {
                token: "admin-token".into(),
                role: Role::Admin,
                tenants: vec![TenantScope::Any],
            },
            TokenConfig {
                token: "acme-publisher".into(),
                role: Role::Publisher,
                tenants: vec![TenantScope::Tenant("acme".parse().unwrap())],
            },
        ]));
        let routes = OpenApiRouter::new()
            .route(
                "/v1/tenants/{tenant}/events",
                post(
                    |TenantPublisher(tenant): TenantPublisher, ApiJson(probe): ApiJson<Probe>| async move {
                        Json(json!({"tenant": tenant, "type": probe.event_type}))
                    },
                ),
            )
            .route(
                "/v1/tenants/{tenant}/events/{id}",
                get(|TenantAdmin(tenant): TenantAdmin, Id(id): Id<EventId>| async move {
                    Json(json!({"tenant": tenant, "id": id}))
                }),
            )
            .route(
                "/v1/plugins/{id}",
                put(|_: PluginAdmin, Id(name): Id<PluginName>, RawBody(wasm): RawBody| async move {
                    Json(json!({"name": name, "size": wasm.len()}))
                }),
            )
            .route(
                "/v1/pages",
                get(|ApiQuery(page): ApiQuery<Page>| async move { Json(json!({"limit": page.limit})) }),
            );
        with_json_fallbacks(with_body_limit(routes, LIMIT).into())
            .layer(axum::middleware::from_fn(connection::close_if_body_unread))
            .with_state(auth)
    }

    async fn send(
        method: &str,
        uri: &str,
        auth: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let response = stand_in()
            .oneshot(request.body(body.into()).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{method} {uri}: body is not JSON ({e}): {bytes:?}"));
        if !parts.status.is_success() {
            let error = &value["error"];
            assert!(
                error["code"].is_string() && error["message"].is_string(),
                "{value}"
            );
        }
        (parts.status, parts.headers, value)
    }

    async fn publish(body: &str, content_type: &str) -> (StatusCode, Value) {
        let (status, _, value) = send(
            "POST",
            "/v1/tenants/acme/events",
            Some(PUBLISHER),
            Some(content_type),
            body.to_owned(),
        )
        .await;
        (status, value)
    }

    fn code(value: &Value) -> &str {
        value["error"]["code"].as_str().unwrap()
    }

    fn message(value: &Value) -> &str {
        value["error"]["message"].as_str().unwrap()
    }

    #[tokio::test]
    async fn json_bodies_are_accepted_and_rejected_in_json() {
        let (status, value) = publish(r#"{"type": "a.b", "payload": 1}"#, "application/json").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(value, json!({"tenant": "acme", "type": "a.b"}));

        let (status, value) = publish(r#"{"type": "a.b", "payload": "#, "application/json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(code(&value), "malformed_json");
        assert!(message(&value).contains("line 1 column"), "{value}");

        // Not well-formed is 400 even when a field before the break is wrong,
        // and trailing data after a good document is not well-formed.
        for malformed in [
            r#"{"type": 5, "payload": "#,
            r#"{"type": "a.b", "payload": 1} x"#,
            r#"{"type": "a.b", "payload": 1}{}"#,
            "",
        ] {
            let (status, value) = publish(malformed, "application/json").await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{malformed:?}: {value}");
            assert_eq!(code(&value), "malformed_json", "{malformed:?}");
        }
        let (status, _, value) = send(
            "POST",
            "/v1/tenants/acme/events",
            Some(PUBLISHER),
            Some("application/json"),
            b"{\"type\": \"\xff\", \"payload\": 1}".to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "invalid UTF-8: {value}");
        assert_eq!(code(&value), "malformed_json");

        let (status, value) = publish(r#"{"payload": 1}"#, "application/json").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(code(&value), "invalid_request");
        assert!(message(&value).contains("missing field `type`"), "{value}");

        let (status, value) = publish(r#"{"type": 5, "payload": 1}"#, "application/json").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(message(&value).starts_with("type: invalid type"), "{value}");

        let (status, value) = publish(r#"{"type": "a.b", "payload": 1}"#, "text/plain").await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(code(&value), "unsupported_media_type");
    }

    #[tokio::test]
    async fn bodies_past_the_limit_are_413_with_the_limit() {
        let big = format!(r#"{{"type": "a.b", "payload": "{}"}}"#, "x".repeat(LIMIT));
        let (status, value) = publish(&big, "application/json").await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(code(&value), "payload_too_large");
        assert!(message(&value).contains("64 bytes"), "{value}");

        let (status, _, value) = send(
            "PUT",
            "/v1/plugins/big",
            Some(ADMIN),
            None,
            vec![0u8; LIMIT + 1],
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(code(&value), "payload_too_large");

        let (status, _, value) = send(
            "PUT",
            "/v1/plugins/small",
            Some(ADMIN),
            None,
            vec![0u8; LIMIT],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(value, json!({"name": "small", "size": LIMIT}));
    }

    /// A request body arriving in several chunks, as from a socket.
    struct Chunks(Vec<axum::body::Bytes>);

    impl axum::body::HttpBody for Chunks {
        type Data = axum::body::Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
            let next = (!self.0.is_empty()).then(|| Ok(http_body::Frame::data(self.0.remove(0))));
            std::task::Poll::Ready(next)
        }
    }

    #[tokio::test]
    async fn answers_given_before_the_body_was_read_close_the_connection() {
        let put = |auth, size| send("PUT", "/v1/plugins/p", Some(auth), None, vec![0u8; size]);
        let (status, headers, _) = put(PUBLISHER, 8).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(headers[header::CONNECTION], "close", "token refused unread");
        // Over the limit in its first chunk, with more still to come.
        let chunks = Chunks(vec![vec![0u8; LIMIT + 1].into(), vec![0u8; 8].into()]);
        let (status, headers, _) =
            send("PUT", "/v1/plugins/p", Some(ADMIN), None, Body::new(chunks)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(headers[header::CONNECTION], "close", "over the limit");

        let (status, headers, _) = put(ADMIN, LIMIT).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!headers.contains_key(header::CONNECTION), "read to its end");
        let (status, headers, _) = send("GET", "/v1/pages", None, None, Body::empty()).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!headers.contains_key(header::CONNECTION), "no body");
    }

    #[tokio::test]
    async fn tokens_are_required_and_checked() {
        let uri = format!("/v1/tenants/acme/events/{}", EventId::generate());
        let (status, headers, value) = send("GET", &uri, None, None, Body::empty()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(code(&value), "unauthorized");
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");

        let (status, _, _) = send("GET", &uri, Some("Bearer nope"), None, Body::empty()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        let (status, _, value) = send("GET", &uri, Some(PUBLISHER), None, Body::empty()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(code(&value), "forbidden");

        let (status, _, value) = send("GET", &uri, Some(ADMIN), None, Body::empty()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(value["tenant"], "acme");

        let (status, _, _) = send(
            "POST",
            "/v1/tenants/globex/events",
            Some(PUBLISHER),
            Some("application/json"),
            r#"{"type": "a", "payload": 1}"#,
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        let (status, _, value) =
            send("PUT", "/v1/plugins/p", Some(PUBLISHER), None, Body::empty()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(message(&value).contains("publisher"), "{value}");
    }

    #[tokio::test]
    async fn malformed_path_ids_are_422_after_authentication() {
        let good = EventId::generate();
        let (status, _, value) = send(
            "GET",
            &format!("/v1/tenants/Bad!/events/{good}"),
            Some(ADMIN),
            None,
            Body::empty(),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(code(&value), "invalid_id");
        assert!(message(&value).contains("tenant"), "{value}");

        let (status, _, value) = send(
            "GET",
            "/v1/tenants/acme/events/att_01J0000000000000000000000",
            Some(ADMIN),
            None,
            Body::empty(),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(message(&value).contains("evt_"), "{value}");

        let (status, _, _) = send(
            "GET",
            &format!("/v1/tenants/Bad!/events/{good}"),
            None,
            None,
            Body::empty(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn query_errors_name_the_parameter() {
        let (status, _, value) = send("GET", "/v1/pages?limit=7", None, None, Body::empty()).await;
        assert_eq!((status, value), (StatusCode::OK, json!({"limit": 7})));

        let (status, _, value) = send("GET", "/v1/pages?limit=x", None, None, Body::empty()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(code(&value), "invalid_request");
        assert!(message(&value).contains("limit"), "{value}");
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_answer_json() {
        let (status, _, value) = send("GET", "/v2/nothing", Some(ADMIN), None, Body::empty()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(code(&value), "not_found");
        assert!(message(&value).contains("GET /v2/nothing"), "{value}");

        let (status, headers, value) = send(
            "DELETE",
            "/v1/tenants/acme/events",
            Some(ADMIN),
            None,
            Body::empty(),
        )
        .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(code(&value), "method_not_allowed");
        assert_eq!(headers[header::ALLOW], "POST");
    }
}
