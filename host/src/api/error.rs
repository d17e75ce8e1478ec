//! The one error type of the HTTP API.
//!
//! Every failure a client can see, from the application, the authenticator,
//! axum's extractors or the router's fallbacks, becomes an [`ApiError`] and is
//! answered as `{"error": {"code": "snake_case", "message": "sentence"}}` with
//! the matching status. Internal errors are logged here and answered without
//! detail.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::app::AppError;
use crate::auth::{Forbidden, Unauthenticated};
use crate::headers::HeaderError;
use crate::ids::InvalidId;

/// An HTTP error answer: status, stable machine code, human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds for a `Retry-After` header (503s).
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 503 with `Retry-After`: nothing was done, the same request may succeed later.
    pub fn unavailable(
        code: &'static str,
        message: impl Into<String>,
        retry_after: std::time::Duration,
    ) -> Self {
        Self {
            retry_after: Some(retry_after.as_secs().max(1)),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    /// The HTTP status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code in the body.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message in the body, for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// 400: the body is not one well-formed JSON document; `detail` is
    /// serde's message with line and column.
    pub fn malformed_json(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the request body is not well-formed JSON: {detail}"),
        )
    }

    /// 400: the body could not be read at all.
    pub fn unreadable_body(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unreadable_body",
            format!("the request body could not be read: {detail}"),
        )
    }

    /// 415: a JSON route got another content type.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "this route takes a JSON body: send `Content-Type: application/json`",
        )
    }

    /// 413, with the limit when the route knows it.
    pub fn payload_too_large(limit: Option<usize>) -> Self {
        let message = match limit {
            Some(limit) => {
                format!("the request body is larger than this route's limit of {limit} bytes")
            }
            None => "the request body is larger than this route accepts".to_owned(),
        };
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// 422: well-formed JSON or query string with a missing or invalid field.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }

    /// 404 for a path no route serves.
    pub fn no_route(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("there is no route for {method} {path}"),
        )
    }

    /// 405 for a path served, but not with this method.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{path} does not accept {method}; the Allow header lists what it does"),
        )
    }

    /// 500 without detail for the client; the detail goes to the log.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error answering a request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred; it has been logged",
        )
    }
}

impl From<AppError> for ApiError {
    fn from(err: AppError) -> Self {
        match err {
            AppError::NotFound { what, id } => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("there is no {what} `{id}`"),
            ),
            AppError::Conflict { code, message } => Self::new(StatusCode::CONFLICT, code, message),
            AppError::Invalid { code, message } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
            }
            AppError::TooLarge { limit } => Self::payload_too_large(Some(limit)),
            AppError::Unavailable {
                code,
                message,
                retry_after,
            } => Self::unavailable(code, message, retry_after),
            AppError::Internal(detail) => Self::internal(detail),
        }
    }
}

impl From<Unauthenticated> for ApiError {
    fn from(err: Unauthenticated) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", err.to_string())
    }
}

impl From<Forbidden> for ApiError {
    fn from(err: Forbidden) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", err.to_string())
    }
}

/// A header the request asks for but hookshape will not send.
impl From<HeaderError> for ApiError {
    fn from(err: HeaderError) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_header",
            err.to_string(),
        )
    }
}

/// A malformed tenant, id or plugin name in the path. It is 422, not 404: the
/// request names something that cannot exist, which is a client bug worth
/// telling apart from "not found (yet)".
impl From<InvalidId> for ApiError {
    fn from(err: InvalidId) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_id",
            err.to_string(),
        )
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(Envelope {
            error: Detail {
                code: self.code,
                message: &self.message,
            },
        });
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use serde_json::{Value, json};

    use super::*;

    async fn render(err: impl Into<ApiError>) -> (StatusCode, Value, Response) {
        let response = err.into().into_response();
        let status = response.status();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap();
        (
            status,
            value,
            Response::from_parts(parts, axum::body::Body::empty()),
        )
    }

    #[tokio::test]
    async fn errors_have_the_contract_shape() {
        let (status, body, response) =
            render(ApiError::invalid_request("missing field `type`")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body,
            json!({"error": {"code": "invalid_request", "message": "missing field `type`"}})
        );
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[tokio::test]
    async fn app_errors_map_to_their_statuses() {
        let cases = [
            (
                AppError::NotFound {
                    what: "event",
                    id: "evt_1".into(),
                },
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                AppError::Conflict {
                    code: "managed_by_config",
                    message: "declared in the config".into(),
                },
                StatusCode::CONFLICT,
                "managed_by_config",
            ),
            (
                AppError::Invalid {
                    code: "refused_target",
                    message: "loopback".into(),
                },
                StatusCode::UNPROCESSABLE_ENTITY,
                "refused_target",
            ),
            (
                AppError::TooLarge { limit: 10 },
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
            ),
        ];
        for (err, want_status, want_code) in cases {
            let (status, body, _) = render(err).await;
            assert_eq!(status, want_status);
            assert_eq!(body["error"]["code"], want_code);
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
    }

    #[tokio::test]
    async fn internal_errors_do_not_leak_details() {
        let (status, body, _) = render(AppError::Internal("sled: corrupted page 42".into())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal");
        assert!(!body.to_string().contains("sled"));
    }

    #[tokio::test]
    async fn auth_errors_are_401_with_a_challenge_and_403() {
        let (status, body, response) = render(Unauthenticated::UnknownToken).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["code"], "unauthorized");
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");

        let (status, body, response) = render(Forbidden::PublisherOnly).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["error"]["code"], "forbidden");
        assert!(!response.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[tokio::test]
    async fn malformed_ids_are_422_naming_the_rule() {
        let err = "Bad!".parse::<crate::ids::Tenant>().unwrap_err();
        let (status, body, _) = render(err).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["code"], "invalid_id");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("[a-z0-9]")
        );
    }
}
