//! What an attempt sends, up to the wire: the subscription's plugin (when
//! it has one), then the signed request. The worker sends what this gives;
//! the dry runs (`hookshape plugin run`, `POST .../dry-run`) show it
//! instead, so a dry run is what a delivery at the same moment would send.

use std::time::Duration;

use crate::clock::Timestamp;
use crate::delivery::request::{self, OutgoingRequest, RequestError};
use crate::model::{Event, LogLine, Subscription};
use crate::plugin::{LoadedPlugin, Outcome, PluginLimits, PluginRuntime, TransformInput};
use crate::registry::PluginRegistry;

/// A compiled plugin ready to run, with the engine and the limits it runs with.
#[derive(Clone, Copy)]
pub struct Transformer<'a> {
    /// The engine the plugin was compiled with.
    pub runtime: &'a PluginRuntime,
    /// The compiled component.
    pub plugin: &'a LoadedPlugin,
    /// Its time and memory limits.
    pub limits: PluginLimits,
}

/// Why nothing would be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotSent {
    /// The plugin chose not to send, for this reason.
    Skipped(String),
    /// The plugin failed, is not installed, or asked for a request hookshape
    /// will not send.
    TransformFailed(String),
    /// The subscription itself cannot produce a valid request.
    Invalid(String),
}

/// The request an attempt would send, or why none, with what the plugin said.
#[derive(Debug)]
pub struct Rendered {
    /// The signed request, or why there is none.
    pub result: Result<OutgoingRequest, NotSent>,
    /// What the plugin logged, in order.
    pub logs: Vec<LogLine>,
    /// The plugin version that ran, when one did.
    pub plugin_sha256: Option<String>,
    /// How long the plugin ran, when one did.
    pub transform_time: Option<Duration>,
}

/// [`render`] with the plugin the subscription names, as the registry
/// resolves it now.
pub async fn render_with(
    plugins: &PluginRegistry,
    event: &Event,
    sub: &Subscription,
    now: Timestamp,
) -> Rendered {
    let Some(name) = &sub.plugin else {
        return render(None, event, sub, now).await;
    };
    match plugins.get_or_fetch(name).await {
        Some(named) => {
            let transformer = Transformer {
                runtime: plugins.runtime(),
                plugin: &named.loaded,
                limits: named.limits,
            };
            render(Some(transformer), event, sub, now).await
        }
        None => Rendered {
            result: Err(NotSent::TransformFailed(format!(
                "plugin {name} is not installed"
            ))),
            logs: Vec::new(),
            plugin_sha256: None,
            transform_time: None,
        },
    }
}

/// Runs `transformer` (the subscription's plugin; `None` for none) on the
/// event, then builds the request signed at `now`.
pub async fn render(
    transformer: Option<Transformer<'_>>,
    event: &Event,
    sub: &Subscription,
    now: Timestamp,
) -> Rendered {
    let mut rendered = Rendered {
        result: Err(NotSent::Invalid(String::new())),
        logs: Vec::new(),
        plugin_sha256: None,
        transform_time: None,
    };
    let transformed = match transformer {
        None => None,
        Some(t) => {
            let config_json = match &sub.plugin_config {
                serde_json::Value::Null => "{}".to_owned(),
                v => v.to_string(),
            };
            let input = TransformInput {
                event,
                subscription_id: sub.id.as_str(),
                url: &sub.url,
                config_json: &config_json,
            };
            let report = t.runtime.transform(t.plugin, t.limits, input).await;
            rendered.plugin_sha256 = Some(t.plugin.sha256.clone());
            rendered.logs = report.logs;
            rendered.transform_time = Some(report.duration);
            match report.result {
                Ok(Outcome::Deliver(req)) => Some(req),
                Ok(Outcome::Skip(reason)) => {
                    rendered.result = Err(NotSent::Skipped(reason));
                    return rendered;
                }
                Err(e) => {
                    rendered.result = Err(NotSent::TransformFailed(e.to_string()));
                    return rendered;
                }
            }
        }
    };
    rendered.result = request::build(event, sub, transformed.as_ref(), now).map_err(|e| match e {
        RequestError::BadContentType(_) => NotSent::TransformFailed(e.to_string()),
        RequestError::BadUrl(_) | RequestError::BadSecret(_) => NotSent::Invalid(e.to_string()),
    });
    rendered
}
