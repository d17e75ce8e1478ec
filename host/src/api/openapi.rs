//! `GET /openapi.json`: the OpenAPI 3.1 document of every `/v1` route,
//! generated from the handlers and the API types.
//!
//! Built with `utoipa` and `utoipa-axum` rather than `aide` + `schemars`:
//! each resource's router is a `utoipa_axum::router::OpenApiRouter` whose
//! routes are added with `routes!(handler, ...)`, which takes a handler's
//! path and method from its `#[utoipa::path]` attribute. The served route
//! and its documentation are therefore one declaration: a route cannot be
//! served under another path than the one documented, and a handler
//! without the attribute does not compile into the router. `aide` does the
//! same through its own `ApiRouter` but wants every extractor and answer
//! type to implement its `OperationInput`/`OperationOutput` traits, which our
//! own extractors (`TenantAdmin`, `ApiJson`, `Id`) would each need by hand;
//! utoipa only needs the types that appear in bodies.
//!
//! What cannot be derived is added here once for every operation: the
//! bearer scheme, and the error body (`{"error": {"code", "message"}}`) as
//! the `default` answer, since every failure of every route has that shape.

use serde::{Deserialize, Serialize};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, KnownFormat, ObjectBuilder, OpenApi, RefOr, ResponseBuilder, Schema,
    SchemaFormat, Type,
};
use utoipa::{IntoParams, Modify, PartialSchema, ToSchema};

use crate::clock::Timestamp;
use crate::headers::HeaderSet;
use crate::ids::{AttemptId, DeliveryId, EventId, PluginName, SubscriptionId, Tenant};
use crate::model::Payload;

/// The name of the bearer scheme in the document.
const BEARER: &str = "bearer";

/// The error body every failure answers with.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// The error's code and message.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// Stable, snake_case, e.g. `invalid_request` (see docs/http-api.md).
    pub code: String,
    /// For people.
    pub message: String,
}

/// The `{tenant}` of a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Only its documentation is used.
pub(super) struct TenantPath {
    /// `[a-z0-9][a-z0-9_-]{0,63}`.
    tenant: Tenant,
}

macro_rules! tenant_and_id {
    ($name:ident, $id:ty, $doc:literal) => {
        /// The `{tenant}` and `{id}` of a path.
        #[derive(IntoParams)]
        #[into_params(parameter_in = Path)]
        #[allow(dead_code)] // Only its documentation is used.
        pub(super) struct $name {
            /// `[a-z0-9][a-z0-9_-]{0,63}`.
            tenant: Tenant,
            #[doc = $doc]
            id: $id,
        }
    };
}

tenant_and_id!(SubscriptionPath, SubscriptionId, "The subscription's id.");
tenant_and_id!(EventPath, EventId, "The event's id (`evt_...`).");
tenant_and_id!(AttemptPath, AttemptId, "The attempt's id (`att_...`).");

/// The `{id}` of a plugin's path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Only its documentation is used.
pub(super) struct PluginPath {
    /// The plugin's name, `[a-z0-9][a-z0-9_-]{0,63}`.
    id: PluginName,
}

/// Schemas of the model's text types: strings with their pattern.
macro_rules! string_schema {
    ($($name:ty => $pattern:literal, $doc:literal;)*) => {$(
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some($pattern))
                    .description(Some($doc))
                    .into()
            }
        }
        impl ToSchema for $name {}
    )*};
}

string_schema! {
    Tenant => "^[a-z0-9][a-z0-9_-]{0,63}$", "A tenant name.";
    PluginName => "^[a-z0-9][a-z0-9_-]{0,63}$", "A plugin name.";
    SubscriptionId => "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", "A subscription id: `sub_<ULID>`, or the config file's name.";
    EventId => "^evt_[0-9A-HJKMNP-TV-Z]{26}$", "An event id.";
    DeliveryId => "^dlv_[0-9A-HJKMNP-TV-Z]{26}$", "A delivery id.";
    AttemptId => "^att_[0-9A-HJKMNP-TV-Z]{26}$", "An attempt id.";
}

impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("RFC 3339, UTC, milliseconds."))
            .into()
    }
}
impl ToSchema for Timestamp {}

impl PartialSchema for HeaderSet {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .additional_properties(Some(String::schema()))
            .description(Some("Header names to values."))
            .into()
    }
}
impl ToSchema for HeaderSet {}

impl PartialSchema for Payload {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some(
                "Any JSON; a string holding the document when the content type is not JSON.",
            ))
            .into()
    }
}
impl ToSchema for Payload {}

/// The parts no handler can say: the info, the bearer scheme on every
/// operation, and the error body as every operation's `default` answer.
struct Common;

impl Modify for Common {
    fn modify(&self, doc: &mut OpenApi) {
        doc.info.title = "hookshape".to_owned();
        doc.info.description = Some(
            "The hookshape HTTP API: ingest events, manage subscriptions, plugins and attempts. \
             Every failure answers `{\"error\": {\"code\", \"message\"}}`; see docs/http-api.md."
                .to_owned(),
        );
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components
            .schemas
            .insert("ErrorBody".to_owned(), ErrorBody::schema());
        components
            .schemas
            .insert("ErrorDetail".to_owned(), ErrorDetail::schema());
        let error = ResponseBuilder::new()
            .description("An error: the status and `error.code` say which (docs/http-api.md).")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for item in doc.paths.paths.values_mut() {
            for operation in operations(item) {
                operation
                    .responses
                    .responses
                    .insert("default".to_owned(), error.clone().into());
                operation.security =
                    Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
            }
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Completes the document gathered from the routers.
pub(super) fn finish(mut doc: OpenApi) -> OpenApi {
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    Common.modify(&mut doc);
    doc
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;
    use http_body_util::BodyExt;
    use serde_json::Value;

    use super::*;
    use crate::api::ApiError;

    fn document() -> Value {
        serde_json::from_str(&crate::api::openapi().to_json().unwrap()).unwrap()
    }

    /// Every `"$ref"` in `value`.
    fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    found.push(r);
                }
                map.values().for_each(|v| refs(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_reference_resolves() {
        let text = crate::api::openapi().to_json().unwrap();
        let spec = oas3::from_json(&text).expect("oas3 parses the document");
        assert_eq!(
            spec.validate_version().unwrap().minor,
            1,
            "{}",
            spec.openapi
        );
        let doc = document();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{r}"));
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{r} does not resolve"
            );
        }
    }

    #[test]
    fn every_operation_has_the_bearer_scheme_the_error_body_and_its_parameters() {
        let doc = document();
        assert_eq!(
            doc["components"]["securitySchemes"][BEARER]["scheme"],
            "bearer"
        );
        let paths = doc["paths"].as_object().unwrap();
        let mut operations = 0;
        for (path, item) in paths {
            assert!(path.starts_with("/v1/"), "{path}");
            for (method, op) in item.as_object().unwrap() {
                operations += 1;
                let what = format!("{method} {path}");
                assert_eq!(op["security"][0][BEARER], serde_json::json!([]), "{what}");
                assert_eq!(
                    op["responses"]["default"]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{what}"
                );
                let documented: Vec<&str> = op["parameters"]
                    .as_array()
                    .map(|ps| {
                        ps.iter()
                            .filter(|p| p["in"] == "path")
                            .map(|p| p["name"].as_str().unwrap())
                            .collect()
                    })
                    .unwrap_or_default();
                let in_path: Vec<&str> = path
                    .split('/')
                    .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
                    .collect();
                assert_eq!(documented, in_path, "{what}");
            }
        }
        assert_eq!(operations, 16, "the 16 operations of the /v1 API");
    }

    /// A route added with `.route(...)` instead of `.routes(routes!(...))`
    /// would be served without documentation.
    #[test]
    fn every_v1_route_is_added_through_its_documentation() {
        let sources = [
            include_str!("mod.rs"),
            include_str!("events.rs"),
            include_str!("subscriptions.rs"),
            include_str!("attempts.rs"),
            include_str!("dry_run.rs"),
            include_str!("tenants.rs"),
            include_str!("plugins.rs"),
            include_str!("health.rs"),
            include_str!("console.rs"),
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
        let files = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(
            files,
            sources.len() + 4,
            "a new file in src/api: add it to this list"
        );
        for source in sources {
            let served = source.split("#[cfg(test)]").next().unwrap();
            for (at, _) in served.match_indices("\"/v1") {
                let literal = served[at + 1..].split('"').next().unwrap();
                if literal.contains("{}") {
                    continue; // a format string (a `Location`), not a route
                }
                assert!(
                    served[..at].ends_with("path = "),
                    "a /v1 path outside a #[utoipa::path]: {}",
                    &served[at..(at + 60).min(served.len())]
                );
            }
        }
    }

    #[tokio::test]
    async fn the_error_schema_is_what_errors_answer() {
        let response = ApiError::invalid_request("missing field `type`").into_response();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: ErrorBody = serde_json::from_slice(&bytes).expect("the documented shape");
        assert_eq!(body.error.code, "invalid_request");
    }
}
