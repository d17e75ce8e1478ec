//! The admin console at `/ui/`: static HTML, CSS and JavaScript modules from
//! `host/console/`, embedded in the binary at build time and served with a
//! strict Content-Security-Policy. The page needs no token; it calls the
//! public `/v1` API with the token the person types in.

use axum::Router;
use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::ApiError;

/// Only the console's own files run and load; it talks only to this origin,
/// and no other site may frame it.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of `host/console/` (a test checks that none is missing).
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("api.js", JS),
    asset!("app.js", JS),
    asset!("dom.js", JS),
    asset!("event.js", JS),
    asset!("json_text.js", JS),
    asset!("plugins.js", JS),
    asset!("subscription.js", JS),
    asset!("subscription_form.js", JS),
    asset!("tenants.js", JS),
    asset!("try.js", JS),
];

fn serve(asset: &Asset) -> Response {
    (
        [
            (CONTENT_TYPE, asset.content_type),
            (CONTENT_SECURITY_POLICY, CSP),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (REFERRER_POLICY, "no-referrer"),
            // The files change with the binary: revalidate rather than keep a stale console.
            (CACHE_CONTROL, "no-cache"),
        ],
        asset.body,
    )
        .into_response()
}

async fn index() -> Response {
    serve(&ASSETS[0])
}

async fn file(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.name == name) {
        Some(asset) => serve(asset),
        None => ApiError::no_route("GET", &format!("/ui/{name}")).into_response(),
    }
}

/// `GET /ui/` and its files; `/ui` redirects to `/ui/` so relative asset
/// paths resolve.
pub(super) fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(index))
        .route("/ui/{name}", get(file))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn get(path: &str) -> Response {
        let request = Request::get(path).body(Body::empty()).unwrap();
        router::<()>().oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn every_file_is_served_with_its_type_and_the_policy() {
        for asset in ASSETS {
            let path = match asset.name {
                "index.html" => "/ui/".to_owned(),
                name => format!("/ui/{name}"),
            };
            let response = get(&path).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let headers = response.headers();
            assert_eq!(headers[header::CONTENT_TYPE], asset.content_type, "{path}");
            assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP, "{path}");
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, asset.body, "{path}");
        }
    }

    #[tokio::test]
    async fn the_bare_path_redirects_and_unknown_files_are_json_404() {
        let response = get("/ui").await;
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(response.headers()[header::LOCATION], "/ui/");

        let response = get("/ui/secrets.txt").await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["error"]["code"], "not_found");
    }

    /// A file added to `host/console/` but not to [`ASSETS`] would 404 in
    /// the browser; markup built from strings would open the console to
    /// hostile payloads and plugin logs.
    #[test]
    fn the_table_lists_every_console_file_and_none_builds_markup_from_strings() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        on_disk.sort();
        let mut listed: Vec<&str> = ASSETS.iter().map(|asset| asset.name).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
        for asset in ASSETS.iter().filter(|asset| asset.name.ends_with(".js")) {
            let text = std::str::from_utf8(asset.body).unwrap();
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                // Comments may name them.
                let uses = text
                    .lines()
                    .filter(|line| line.contains(sink) && !line.trim_start().starts_with("//"))
                    .count();
                assert_eq!(uses, 0, "{} uses {sink}", asset.name);
            }
        }
    }
}
