//! Property tests (fuzzing in plain `cargo test`) of the checks on a
//! plugin's output: whatever request a component returns, checking it does
//! not panic, and what passes is a request hookshape can send.

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;

use super::*;

/// Names a plugin might try: ordinary, reserved for hookshape, and junk.
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            &[
                "x-team",
                "X-Team",
                "authorization",
                "webhook-id",
                "Webhook-Signature",
                "content-length",
                "Host",
                "transfer-encoding",
                "content-type",
                "",
            ][..]
        )
        .prop_map(str::to_owned),
        "[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,24}",
        "\\PC{0,24}",
        ".{0,8}",
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}",
        "\\PC{0,40}",
        ".{0,16}",
        (0usize..3).prop_map(|extra| "v".repeat(MAX_HEADER_VALUE_BYTES - 1 + extra)),
    ]
}

fn output() -> impl Strategy<Value = wit::Outcome> {
    let request = (
        prop::collection::vec(any::<u8>(), 0..64),
        prop::option::of(prop_oneof!["[ -~]{0,40}", "\\PC{0,40}", ".{0,8}"]),
        prop::collection::vec((header_name(), header_value()), 0..(MAX_HEADERS + 3)),
    )
        .prop_map(|(body, content_type, headers)| wit::Request {
            body,
            content_type,
            headers,
        });
    prop_oneof![
        request.prop_map(wit::Outcome::Deliver),
        "\\PC{0,40}".prop_map(wit::Outcome::Skip),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_output_is_checked_without_panicking_and_what_passes_can_be_sent(outcome in output()) {
        let Ok(Outcome::Deliver(request)) = check_outcome(outcome) else {
            return Ok(());
        };
        if let Some(content_type) = &request.content_type {
            prop_assert!(HeaderValue::from_str(content_type).is_ok());
        }
        let mut sent = HeaderMap::new();
        let mut count = 0;
        for (name, value) in request.headers.to_http() {
            count += 1;
            let lower = name.as_str();
            prop_assert!(!lower.starts_with("webhook-"), "{lower}");
            prop_assert!(
                !["content-length", "host", "transfer-encoding"].contains(&lower),
                "{lower}"
            );
            prop_assert!(value.len() <= MAX_HEADER_VALUE_BYTES);
            prop_assert!(HeaderName::from_bytes(lower.as_bytes()).is_ok());
            sent.append(name, value);
        }
        prop_assert!(count <= MAX_HEADERS);
    }
}
