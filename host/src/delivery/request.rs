//! The outgoing request: body, content type, custom headers and the Standard
//! Webhooks signature, exactly as the contract's "outgoing request" says.
//!
//! Shared by the delivery worker, the `verify` test send and the `plugin run`
//! dry run, so all three produce byte-identical requests.

use bytes::Bytes;
use hookshape_signing::Secret;
use http::{HeaderMap, HeaderValue};
use serde::Serialize;

use crate::clock::Timestamp;
use crate::model::{Event, Payload, Subscription};
use crate::plugin::PluginRequest;

/// A request ready for the HTTP client.
#[derive(Debug, Clone)]
pub struct OutgoingRequest {
    /// The subscription's URL.
    pub url: url::Url,
    /// The subscription's and the plugin's headers, the signature headers and the content type.
    pub headers: HeaderMap,
    /// The plugin's body, or the default event body.
    pub body: Bytes,
}

/// Why a delivery's request could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The subscription's URL is not a URL.
    #[error("the subscription URL {0:?} does not parse")]
    BadUrl(String),
    /// The subscription's signing secret is not a valid secret.
    #[error("the subscription secret is invalid: {0}")]
    BadSecret(String),
    /// The plugin's content type is not a header value.
    #[error("plugin header \"content-type\" is not allowed: {0}")]
    BadContentType(String),
}

/// The body sent when a subscription has no plugin.
#[derive(Serialize)]
struct DefaultBody<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    tenant: &'a str,
    timestamp: String,
    data: &'a Payload,
}

pub(crate) fn default_body(event: &Event) -> Vec<u8> {
    let body = DefaultBody {
        id: event.id.as_str(),
        event_type: &event.event_type,
        tenant: event.tenant.as_str(),
        timestamp: event.timestamp.to_string(),
        data: &event.payload,
    };
    serde_json::to_vec(&body).expect("a JSON value serialises")
}

/// The keys an attempt at `now` is signed with: the current one, then the
/// rotated-out one until its overlap ends.
fn signing_secrets(sub: &Subscription, now: Timestamp) -> Result<Vec<Secret>, RequestError> {
    let previous = sub
        .previous_secret
        .as_ref()
        .filter(|p| now < p.until)
        .map(|p| p.key.as_str());
    std::iter::once(sub.secret.as_str())
        .chain(previous)
        .map(|s| Secret::parse(s).map_err(|e| RequestError::BadSecret(e.to_string())))
        .collect()
}

/// Builds the signed request for one attempt made at `now`. `transformed` is
/// the plugin's request, when the subscription has a plugin.
pub fn build(
    event: &Event,
    sub: &Subscription,
    transformed: Option<&PluginRequest>,
    now: Timestamp,
) -> Result<OutgoingRequest, RequestError> {
    let url = url::Url::parse(&sub.url).map_err(|_| RequestError::BadUrl(sub.url.clone()))?;
    let secrets = signing_secrets(sub, now)?;
    let (body, content_type) = match transformed {
        Some(p) => (
            p.body.clone(),
            p.content_type.as_deref().unwrap_or("application/json"),
        ),
        None => (default_body(event), "application/json"),
    };
    // The subscription's headers, then the plugin's, which replace a shared name.
    let mut headers = HeaderMap::new();
    let plugin_headers = transformed.map(|p| p.headers.to_http());
    for (name, value) in sub
        .headers
        .to_http()
        .chain(plugin_headers.into_iter().flatten())
    {
        headers.insert(name, value);
    }
    let content_type = HeaderValue::from_str(content_type)
        .map_err(|e| RequestError::BadContentType(e.to_string()))?;
    headers.insert(http::header::CONTENT_TYPE, content_type);
    let ts = now.as_secs();
    let signature = hookshape_signing::sign_all(&secrets, event.id.as_str(), ts, &body);
    let value =
        |s: &str| HeaderValue::from_str(s).expect("ids, digits and base64 are valid header values");
    headers.insert("webhook-id", value(event.id.as_str()));
    headers.insert("webhook-timestamp", value(&ts.to_string()));
    headers.insert("webhook-signature", value(&signature));
    Ok(OutgoingRequest {
        url,
        headers,
        body: Bytes::from(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::HeaderSet;
    use crate::ids::EventId;
    use std::time::Duration;

    fn fixture() -> (Event, Subscription) {
        let event = Event {
            id: EventId::generate(),
            source_id: None,
            event_type: "dashboard.updated".into(),
            tenant: "acme".parse().unwrap(),
            timestamp: Timestamp(1_763_900_000_000),
            content_type: "application/json".into(),
            payload: Payload::from_value(&serde_json::json!({"dashboard": {"name": "Sales"}})),
        };
        let sub = Subscription {
            headers: HeaderSet::from_pairs([("X-Team", "data")]).unwrap(),
            secret: Secret::generate().to_whsec(),
            ..Subscription::for_tests("s1")
        };
        (event, sub)
    }

    #[test]
    fn default_request_is_signed_and_carries_the_envelope() {
        let (event, sub) = fixture();
        let now = Timestamp(1_763_900_001_000);
        let req = build(&event, &sub, None, now).unwrap();
        let h = |n: &str| req.headers.get(n).unwrap().to_str().unwrap().to_owned();
        assert_eq!(h("content-type"), "application/json");
        assert_eq!(h("x-team"), "data");
        assert_eq!(h("webhook-id"), event.id.as_str());
        assert_eq!(h("webhook-timestamp"), "1763900001");
        let secret = Secret::parse(&sub.secret).unwrap();
        hookshape_signing::verify(
            &secret,
            &h("webhook-id"),
            &h("webhook-timestamp"),
            &h("webhook-signature"),
            &req.body,
            now.as_secs(),
            Duration::from_secs(300),
        )
        .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["id"], event.id.as_str());
        assert_eq!(body["type"], "dashboard.updated");
        assert_eq!(body["tenant"], "acme");
        assert_eq!(body["timestamp"], "2025-11-23T12:13:20.000Z");
        assert_eq!(body["data"]["dashboard"]["name"], "Sales");
    }

    #[test]
    fn a_rotated_out_key_signs_too_until_its_overlap_ends() {
        let (event, mut sub) = fixture();
        let old = Secret::generate();
        sub.previous_secret = Some(crate::model::PreviousSecret {
            key: old.to_whsec(),
            rotated_at: Timestamp(1_000_000),
            until: Timestamp(2_000_000),
        });
        let new = Secret::parse(&sub.secret).unwrap();
        let signature = |now: Timestamp| {
            let req = build(&event, &sub, None, now).unwrap();
            let sig = req.headers["webhook-signature"]
                .to_str()
                .unwrap()
                .to_owned();
            (sig, req.body)
        };
        let (within, body) = signature(Timestamp(1_999_999));
        let sign = |k: &Secret| hookshape_signing::sign(k, event.id.as_str(), 1_999, &body);
        assert_eq!(within, format!("{} {}", sign(&new), sign(&old)));
        let (after, body) = signature(Timestamp(2_000_000));
        assert_eq!(
            after,
            hookshape_signing::sign(&new, event.id.as_str(), 2_000, &body)
        );
    }

    /// Reserved headers cannot reach here: a [`HeaderSet`] refuses them.
    #[test]
    fn plugin_body_headers_and_content_type_win_but_a_bad_content_type_fails() {
        let (event, sub) = fixture();
        let p = PluginRequest {
            body: b"<x/>".to_vec(),
            content_type: Some("application/xml".into()),
            headers: HeaderSet::from_pairs([("x-team", "bi")]).unwrap(),
        };
        let req = build(&event, &sub, Some(&p), Timestamp(0)).unwrap();
        assert_eq!(&req.body[..], b"<x/>");
        assert_eq!(req.headers["content-type"], "application/xml");
        assert_eq!(req.headers["x-team"], "bi");
        assert_eq!(req.headers.get_all("x-team").iter().count(), 1);

        let evil = PluginRequest {
            content_type: Some("text/plain\nx-evil: 1".into()),
            ..p
        };
        let err = build(&event, &sub, Some(&evil), Timestamp(0)).unwrap_err();
        assert!(matches!(err, RequestError::BadContentType(_)), "{err}");
    }
}
