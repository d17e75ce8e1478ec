//! Write hookshape payload transforms in Rust.
//!
//! A hookshape plugin is a WebAssembly component that reshapes (or drops) an
//! event before hookshape POSTs it to a subscription's URL. This crate owns
//! the guest side of that contract: it binds the `transformer` world in
//! `wit/world.wit` and hides the generated bindings behind plain Rust types
//! ([`Event`], [`Subscription`], [`Request`], [`Outcome`], [`Error`]), one
//! trait ([`Transform`]), one export macro ([`export_transform!`]) and log
//! macros ([`info!`] and friends) whose lines are kept on the delivery attempt.
//!
//! The host calls the transform once per delivery attempt on a fresh
//! instance, so a plugin keeps no state between calls. Its sandbox has no
//! files, no network and no environment; it is interrupted past its timeout
//! and trapped past its memory cap. Whatever it prints to stdout or stderr
//! ends up in its log lines too (a panic message, for instance).
//!
//! # A complete plugin
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "slack-threshold"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! hookshape-plugin-sdk = { path = "../../plugin-sdk" }
//! serde = { version = "1", features = ["derive"] }
//! serde_json = "1"
//! ```
//!
//! `src/lib.rs`: alert a Slack channel when a report's revenue crosses a
//! threshold, and stay quiet otherwise.
//!
//! ```
//! use hookshape_plugin_sdk::{Error, Event, Outcome, Request, Subscription, Transform};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Config {
//!     /// JSON pointer to the number to watch, e.g. `/rows/0/revenue`.
//!     pointer: String,
//!     threshold: f64,
//! }
//!
//! struct SlackThreshold;
//!
//! impl Transform for SlackThreshold {
//!     fn transform(event: Event, subscription: Subscription) -> Result<Outcome, Error> {
//!         let config: Config = subscription.config()?;
//!         let payload = event.json_value()?;
//!         let Some(value) = payload.pointer(&config.pointer).and_then(|v| v.as_f64()) else {
//!             return Err(Error::msg(format!("no number at {}", config.pointer)));
//!         };
//!         if value <= config.threshold {
//!             return Ok(Outcome::skip(format!("{value} is not above {}", config.threshold)));
//!         }
//!         hookshape_plugin_sdk::info!("{value} crossed {}", config.threshold);
//!         let message = serde_json::json!({
//!             "text": format!("{}: {value} is above {}", event.event_type, config.threshold),
//!         });
//!         Ok(Outcome::Deliver(Request::json(&message)?.header("x-source", "hookshape")))
//!     }
//! }
//!
//! hookshape_plugin_sdk::export_transform!(SlackThreshold);
//! # fn main() {
//! #     use hookshape_plugin_sdk::testing;
//! #     let payload = r#"{"rows":[{"revenue":150000}]}"#;
//! #     let event = testing::event("report_run_completed", "application/json", payload);
//! #     let config = serde_json::json!({"pointer": "/rows/0/revenue", "threshold": 100000});
//! #     let request = testing::delivered(testing::run::<SlackThreshold>(event, config));
//! #     assert_eq!(request.headers, vec![("x-source".to_owned(), "hookshape".to_owned())]);
//! # }
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --release`: the
//! `.wasm` in `target/wasm32-wasip2/release/` is the component to configure
//! in hookshape. `hookshape plugin run --plugin FILE.wasm --event EVENT.json`
//! tries it on an event without running the dispatcher.
//!
//! # Testing natively
//!
//! Every type here is plain data, so `cargo test` on the host target can call
//! `MyType::transform(event, subscription)` directly. The [`testing`] module
//! builds those arguments, from scratch or from an ingest body like the ones
//! posted to hookshape, and takes the outcome apart; in a plugin's
//! `#[cfg(test)] mod tests`:
//!
//! ```
//! use hookshape_plugin_sdk::testing::{delivered_json, failed, run, sample_event};
//! use hookshape_plugin_sdk::{Error, Event, Outcome, Request, Subscription, Transform};
//! use serde_json::json;
//!
//! /// Forwards only the order id.
//! struct OrderId;
//!
//! impl Transform for OrderId {
//!     fn transform(event: Event, _: Subscription) -> Result<Outcome, Error> {
//!         let order = event.json_value()?;
//!         Ok(Request::json(&json!({"order": order["id"]}))?.into())
//!     }
//! }
//!
//! let paid = sample_event(r#"{"type": "order.paid", "payload": {"id": 7, "total": 12.5}}"#);
//! assert_eq!(delivered_json(run::<OrderId>(paid, json!({}))), json!({"order": 7}));
//!
//! let xml = sample_event(
//!     r#"{"type": "order.paid", "content_type": "application/xml", "payload": "<order/>"}"#,
//! );
//! assert!(failed(run::<OrderId>(xml, json!({}))).contains("expected value"));
//! ```
//!
//! Off WebAssembly the log macros write to stderr.

mod error;
pub mod testing;
mod types;

pub use error::Error;
pub use types::{Event, Outcome, Request, Subscription, is_json_media_type};

/// A payload transform: the one function a plugin implements.
///
/// Wire it to the component export with [`export_transform!`].
pub trait Transform {
    /// Shapes `event` for `subscription`'s receiver: deliver a request, skip
    /// with a reason, or fail. An `Err` fails the attempt as
    /// `transform_failed` with the error's message, and it is retried.
    fn transform(event: Event, subscription: Subscription) -> Result<Outcome, Error>;
}

/// Exports a [`Transform`] implementation as the component's `transform`
/// function. Use it once per plugin, with the name of a type in scope:
///
/// ```
/// use hookshape_plugin_sdk::{Error, Event, Outcome, Subscription, Transform};
///
/// struct Quiet;
///
/// impl Transform for Quiet {
///     fn transform(_: Event, _: Subscription) -> Result<Outcome, Error> {
///         Ok(Outcome::skip("nothing to say"))
///     }
/// }
///
/// hookshape_plugin_sdk::export_transform!(Quiet);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_transform {
    ($ty:ident) => {
        const _: () = {
            impl $crate::__private::Guest for $ty {
                fn transform(
                    event: $crate::__private::RawEvent,
                    subscription: $crate::__private::RawSubscription,
                ) -> ::core::result::Result<
                    $crate::__private::RawOutcome,
                    $crate::__private::String,
                > {
                    $crate::__private::run::<$ty>(event, subscription)
                }
            }
            $crate::__private::export!($ty with_types_in $crate::__private::bindings);
        };
    };
}

/// Logs a `trace` line on the attempt: `trace!("n = {}", n)`.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => {
        $crate::__private::log($crate::__private::Level::Trace, ::core::format_args!($($arg)+))
    };
}

/// Logs a `debug` line on the attempt: `debug!("n = {}", n)`.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => {
        $crate::__private::log($crate::__private::Level::Debug, ::core::format_args!($($arg)+))
    };
}

/// Logs an `info` line on the attempt: `info!("n = {}", n)`.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => {
        $crate::__private::log($crate::__private::Level::Info, ::core::format_args!($($arg)+))
    };
}

/// Logs a `warn` line on the attempt: `warn!("n = {}", n)`.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => {
        $crate::__private::log($crate::__private::Level::Warn, ::core::format_args!($($arg)+))
    };
}

/// Logs an `error` line on the attempt: `error!("n = {}", n)`.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => {
        $crate::__private::log($crate::__private::Level::Error, ::core::format_args!($($arg)+))
    };
}

/// What the macros above expand to. Not part of the API.
#[doc(hidden)]
pub mod __private {
    use std::fmt;

    pub use std::string::String;

    pub use bindings::hookshape::plugin::host::Level;
    pub use bindings::hookshape::plugin::types::Request as RawRequest;
    pub use bindings::{
        Event as RawEvent, Guest, Outcome as RawOutcome, Subscription as RawSubscription, export,
    };

    use crate::{Event, Outcome, Subscription, Transform};

    pub mod bindings {
        wit_bindgen::generate!({
            world: "transformer",
            path: "wit",
            pub_export_macro: true,
            export_macro_name: "export",
            default_bindings_module: "$crate::__private::bindings",
        });
    }

    /// Runs `T` on the raw export arguments and lowers its answer.
    pub fn run<T: Transform>(
        event: RawEvent,
        subscription: RawSubscription,
    ) -> Result<RawOutcome, String> {
        let event = Event {
            id: event.id,
            tenant: event.tenant,
            event_type: event.event_type,
            timestamp: event.timestamp,
            content_type: event.content_type,
            payload: event.payload,
        };
        let subscription = Subscription {
            id: subscription.id,
            url: subscription.url,
            config: subscription.config,
        };
        match T::transform(event, subscription) {
            Ok(Outcome::Deliver(r)) => Ok(RawOutcome::Deliver(RawRequest {
                body: r.body,
                content_type: r.content_type,
                headers: r.headers,
            })),
            Ok(Outcome::Skip(reason)) => Ok(RawOutcome::Skip(reason)),
            Err(e) => Err(e.into_message()),
        }
    }

    /// Sends a log line to the host; off WebAssembly (native unit tests),
    /// where the host import does not exist, writes it to stderr.
    pub fn log(level: Level, args: fmt::Arguments<'_>) {
        let message = args.to_string();
        #[cfg(target_arch = "wasm32")]
        bindings::hookshape::plugin::host::log(level, &message);
        #[cfg(not(target_arch = "wasm32"))]
        eprintln!("[{}] {message}", level_name(level));
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn level_name(level: Level) -> &'static str {
        match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Upper;

    impl Transform for Upper {
        fn transform(event: Event, subscription: Subscription) -> Result<Outcome, Error> {
            crate::info!("transforming {} for {}", event.id, subscription.id);
            match event.text()? {
                "" => Err(Error::msg("empty payload")),
                "quiet" => Ok(Outcome::skip("asked to be quiet")),
                text => Ok(Request::new(text.to_uppercase(), "text/plain")
                    .header("x-len", text.len().to_string())
                    .into()),
            }
        }
    }

    fn raw_event(payload: &str) -> __private::RawEvent {
        __private::RawEvent {
            id: "evt_1".into(),
            tenant: "acme".into(),
            event_type: "note".into(),
            timestamp: "2025-01-01T00:00:00.000Z".into(),
            content_type: "text/plain".into(),
            payload: payload.as_bytes().to_vec(),
        }
    }

    fn raw_subscription() -> __private::RawSubscription {
        __private::RawSubscription {
            id: "sub_1".into(),
            url: "https://example.com".into(),
            config: "{}".into(),
        }
    }

    #[test]
    fn run_lowers_every_outcome() {
        match __private::run::<Upper>(raw_event("abc"), raw_subscription()) {
            Ok(__private::RawOutcome::Deliver(r)) => {
                assert_eq!(r.body, b"ABC");
                assert_eq!(r.content_type.as_deref(), Some("text/plain"));
                assert_eq!(r.headers, vec![("x-len".to_owned(), "3".to_owned())]);
            }
            other => panic!("expected a delivery, got {other:?}"),
        }
        assert!(matches!(
            __private::run::<Upper>(raw_event("quiet"), raw_subscription()),
            Ok(__private::RawOutcome::Skip(reason)) if reason == "asked to be quiet"
        ));
        assert_eq!(
            __private::run::<Upper>(raw_event(""), raw_subscription()).unwrap_err(),
            "empty payload"
        );
    }
}
