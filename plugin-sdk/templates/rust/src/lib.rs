//! `{{name}}`: a hookshape transform. Sends a short chat message for every
//! JSON event, and skips documents (XML, CSV...).

use hookshape_plugin_sdk::{Error, Event, Outcome, Request, Subscription, Transform, export_transform, info};
use serde::Deserialize;
use serde_json::json;

/// The subscription's `plugin_config`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    prefix: String,
}

struct Plugin;

impl Transform for Plugin {
    fn transform(event: Event, subscription: Subscription) -> Result<Outcome, Error> {
        let config: Config = subscription.config()?;
        if !event.is_json() {
            return Ok(Outcome::skip(format!("{} is not JSON", event.content_type)));
        }
        info!("forwarding {}", event.event_type);
        let message = json!({
            "text": format!("{}{} from {}", config.prefix, event.event_type, event.tenant),
            "event": event.json_value()?,
        });
        Ok(Request::json(&message)?.into())
    }
}

export_transform!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use hookshape_plugin_sdk::testing::{delivered_json, event, run, skipped};

    #[test]
    fn json_events_become_messages() {
        let outcome = run::<Plugin>(event("order.paid", "application/json", r#"{"id": 7}"#), json!({"prefix": "New: "}));
        let body = delivered_json(outcome);
        assert_eq!(body["text"], "New: order.paid from acme");
        assert_eq!(body["event"], json!({"id": 7}));
    }

    #[test]
    fn documents_are_skipped() {
        let outcome = run::<Plugin>(event("report", "application/xml", "<r/>"), json!({}));
        assert_eq!(skipped(outcome), "application/xml is not JSON");
    }
}
