//! Property tests (fuzzing in plain `cargo test`) of event ingest
//! validation: whatever a source posts, checking it does not panic, and what
//! passes keeps the rules the store and the deliveries rely on.

use proptest::prelude::*;
use serde_json::json;

use super::*;

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_.*]{0,12}",
        "\\PC{0,40}",
        ".{0,8}",
        (MAX_NAME_LEN - 1..MAX_NAME_LEN + 2).prop_map(|n| "t".repeat(n)),
    ]
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        "\\PC{0,40}".prop_map(|s| Payload::from_value(&json!(s))),
        any::<i64>().prop_map(|n| Payload::from_value(&json!({"n": n}))),
        Just(Payload::from_value(&json!(null))),
    ]
}

fn new_event() -> impl Strategy<Value = NewEvent> {
    (
        name(),
        prop::option::of(name()),
        prop::option::of(prop_oneof![
            Just("application/json".to_owned()),
            Just("application/xml".to_owned()),
            Just("application/cloudevents+json; charset=utf-8".to_owned()),
            "\\PC{0,30}",
            ".{0,6}",
        ]),
        payload(),
    )
        .prop_map(|(event_type, source_id, content_type, payload)| NewEvent {
            event_type,
            source_id,
            content_type,
            payload,
        })
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME_LEN && !s.chars().any(char::is_control)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn any_event_is_checked_without_panicking_and_what_passes_keeps_the_rules(
        event in new_event()
    ) {
        let tenant: Tenant = "acme".parse().unwrap();
        match checked_event(&tenant, event, Timestamp(1)) {
            Ok(event) => {
                prop_assert!(valid_name(&event.event_type));
                prop_assert!(event.source_id.as_deref().is_none_or(valid_name));
                prop_assert!(!event.content_type.trim().is_empty());
                prop_assert!(is_json_content_type(&event.content_type) || event.payload.is_string());
                prop_assert_eq!(event.tenant, tenant);
            }
            Err(AppError::Invalid { code, message }) => {
                prop_assert_eq!(code, "invalid_request");
                prop_assert!(!message.is_empty());
            }
            Err(other) => prop_assert!(false, "not a 422: {other:?}"),
        }
    }
}
