//! Request extractors whose every rejection is an [`ApiError`].
//!
//! Handlers take these instead of axum's own `Json`, `Path`, `Query` and
//! `Bytes`, so no plain-text rejection can escape. The caller extractors
//! ([`TenantAdmin`], [`TenantPublisher`], [`PluginAdmin`], [`Admin`]) authenticate,
//! parse the tenant and authorize in that order (401, then 422, then 403), so
//! a route that takes one cannot forget a step.

use std::str::FromStr;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{
    BytesRejection, FailedToBufferBody, JsonRejection, QueryRejection, RawPathParamsRejection,
};
use axum::extract::{
    FromRef, FromRequest, FromRequestParts, OptionalFromRequest, Query, RawPathParams, Request,
};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::error::ApiError;
use crate::auth::{Access, Authenticator, Grant};
use crate::ids::{InvalidId, Tenant};

/// The body size limit a route was given, for the 413 message. Set together
/// with axum's `DefaultBodyLimit`, which does the enforcing.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

fn source_message(err: &(dyn std::error::Error + 'static)) -> String {
    err.source()
        .map_or_else(|| err.to_string(), ToString::to_string)
}

fn body_error(rejection: BytesRejection, limit: Option<BodyLimit>) -> ApiError {
    match rejection {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            ApiError::payload_too_large(limit.map(|BodyLimit(n)| n))
        }
        other => ApiError::unreadable_body(source_message(&other)),
    }
}

/// Reading a body as one JSON document: every failure to parse, trailing
/// data included (axum calls that a data error), is `malformed_json`.
fn document_error(rejection: JsonRejection, limit: Option<BodyLimit>) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(err) => ApiError::malformed_json(source_message(&err)),
        JsonRejection::JsonSyntaxError(err) => ApiError::malformed_json(source_message(&err)),
        JsonRejection::MissingJsonContentType(_) => ApiError::unsupported_media_type(),
        JsonRejection::BytesRejection(err) => body_error(err, limit),
        other => ApiError::unreadable_body(other.body_text()),
    }
}

/// A JSON body: 415 without a JSON content type, 413 past the route's limit,
/// 400 `malformed_json` when it is not one well-formed JSON document (trailing
/// data included), 422 `invalid_request` naming the field when it does not fit
/// `T` (or nests deeper than serde_json's limit of 128).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let limit = req.extensions().get::<BodyLimit>().copied();
        // Syntax first, over the whole body: reading straight into `T` stops
        // at the first field that does not fit (a 422) before it sees that
        // the rest is not JSON.
        let Json(document) = <Json<Box<RawValue>> as FromRequest<S>>::from_request(req, state)
            .await
            .map_err(|rejection| document_error(rejection, limit))?;
        // The sources are serde_path_to_error's messages: the field path,
        // serde's reason, and the line and column.
        Json::<T>::from_bytes(document.get().as_bytes())
            .map(|Json(value)| Self(value))
            .map_err(|rejection| ApiError::invalid_request(source_message(&rejection)))
    }
}

/// An optional JSON body (`Option<ApiJson<T>>`): an empty body is `None`;
/// any other is read as [`ApiJson`] reads it.
impl<T, S> OptionalFromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        let (parts, body) = req.into_parts();
        let RawBody(bytes) = <RawBody as FromRequest<S>>::from_request(
            Request::from_parts(parts.clone(), body),
            state,
        )
        .await?;
        if bytes.is_empty() {
            return Ok(None);
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        <Self as FromRequest<S>>::from_request(req, state)
            .await
            .map(Some)
    }
}

/// A raw body of any content type, within the route's limit.
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl<S> FromRequest<S> for RawBody
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let limit = req.extensions().get::<BodyLimit>().copied();
        Bytes::from_request(req, state)
            .await
            .map(Self)
            .map_err(|rejection| body_error(rejection, limit))
    }
}

/// A query string deserialized into `T`; 422 `invalid_request` naming the parameter.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        match Query::<T>::try_from_uri(&parts.uri) {
            Ok(Query(value)) => Ok(Self(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(err)) => {
                Err(ApiError::invalid_request(format!(
                    "invalid query string: {}",
                    source_message(&err)
                )))
            }
            Err(other) => Err(ApiError::invalid_request(other.body_text())),
        }
    }
}

/// One named path parameter, percent-decoded.
async fn path_param<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    key: &str,
) -> Result<String, ApiError> {
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|rejection| match rejection {
            RawPathParamsRejection::InvalidUtf8InPathParam(err) => {
                ApiError::invalid_request(err.body_text())
            }
            other => ApiError::internal(other.body_text()),
        })?;
    params
        .iter()
        .find_map(|(k, v)| (k == key).then(|| v.to_owned()))
        .ok_or_else(|| ApiError::internal(format!("route has no `{{{key}}}` path parameter")))
}

/// The `{id}` path parameter, parsed: every resource id sits in `{id}`.
/// A malformed id is 422 `invalid_id`.
#[derive(Debug)]
pub struct Id<T>(pub T);

impl<T, S> FromRequestParts<S> for Id<T>
where
    T: FromStr<Err = InvalidId>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let raw = path_param(parts, state, "id").await?;
        Ok(Self(raw.parse()?))
    }
}

/// The caller's grant (401 without one) and the `{tenant}` of the path (422
/// when malformed), for the caller extractors to authorize.
async fn grant_and_tenant<S>(parts: &mut Parts, state: &S) -> Result<(Grant, Tenant), ApiError>
where
    S: Send + Sync,
    Arc<Authenticator>: FromRef<S>,
{
    let grant = authenticate(parts, state)?;
    let tenant = path_param(parts, state, "tenant").await?.parse()?;
    Ok((grant, tenant))
}

fn authenticate<S>(parts: &Parts, state: &S) -> Result<Grant, ApiError>
where
    Arc<Authenticator>: FromRef<S>,
{
    let auth = Arc::<Authenticator>::from_ref(state);
    Ok(auth.authenticate(parts.headers.get(AUTHORIZATION))?)
}

/// A caller allowed to administer the `{tenant}` of the path.
#[derive(Debug)]
pub struct TenantAdmin(pub Tenant);

impl<S> FromRequestParts<S> for TenantAdmin
where
    S: Send + Sync,
    Arc<Authenticator>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let (grant, tenant) = grant_and_tenant(parts, state).await?;
        grant.authorize(Access::Administer(&tenant))?;
        Ok(Self(tenant))
    }
}

/// A caller allowed to publish events to the `{tenant}` of the path.
#[derive(Debug)]
pub struct TenantPublisher(pub Tenant);

impl<S> FromRequestParts<S> for TenantPublisher
where
    S: Send + Sync,
    Arc<Authenticator>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let (grant, tenant) = grant_and_tenant(parts, state).await?;
        grant.authorize(Access::Publish(&tenant))?;
        Ok(Self(tenant))
    }
}

/// An admin caller, with its grant: what a route that spans tenants
/// filters by.
#[derive(Debug)]
pub struct Admin(pub Grant);

impl<S> FromRequestParts<S> for Admin
where
    S: Send + Sync,
    Arc<Authenticator>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let grant = authenticate(parts, state)?;
        grant.authorize(Access::ListTenants)?;
        Ok(Self(grant))
    }
}

/// A caller allowed to manage the plugins every tenant shares.
#[derive(Debug)]
pub struct PluginAdmin;

impl<S> FromRequestParts<S> for PluginAdmin
where
    S: Send + Sync,
    Arc<Authenticator>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        authenticate(parts, state)?.authorize(Access::ManagePlugins)?;
        Ok(Self)
    }
}
