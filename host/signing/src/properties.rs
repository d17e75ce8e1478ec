//! Property tests (fuzzing in plain `cargo test`) of the signature
//! verifier: whatever the headers and body, it answers without panicking;
//! what was signed verifies, alone or among other signatures; a changed body,
//! id or timestamp does not.

use std::time::Duration;

use base64::Engine;
use proptest::prelude::*;

use super::*;

const TOLERANCE: Duration = Duration::from_secs(300);
const NOW: u64 = 1_700_000_000;

fn secret() -> impl Strategy<Value = Secret> {
    prop::collection::vec(any::<u8>(), 24..=64).prop_map(|key| {
        Secret::parse(&format!("whsec_{}", BASE64.encode(key))).expect("24 to 64 bytes")
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_headers_and_body_are_answered_without_panicking(
        secret in secret(),
        id in "\\PC{0,40}",
        timestamp in prop_oneof!["\\PC{0,24}", (0u64..=u64::MAX).prop_map(|t| t.to_string())],
        signature in prop_oneof![
            "\\PC{0,120}",
            prop::collection::vec(any::<u8>(), 0..40)
                .prop_map(|b| format!("v1,{}", BASE64.encode(b))),
        ],
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        // Only a forgery would verify: the signature above is never the MAC.
        prop_assert!(verify(&secret, &id, &timestamp, &signature, &body, NOW, TOLERANCE).is_err());
    }

    #[test]
    fn what_was_signed_verifies_and_any_change_does_not(
        secret in secret(),
        other in secret(),
        id in "[ -~]{1,40}",
        skew in 0u64..=300,
        later in any::<bool>(),
        body in prop::collection::vec(any::<u8>(), 0..256),
        flip in any::<prop::sample::Index>(),
    ) {
        let timestamp = if later { NOW + skew } else { NOW - skew };
        let signature = sign(&secret, &id, timestamp, &body);
        let ts = timestamp.to_string();
        prop_assert_eq!(verify(&secret, &id, &ts, &signature, &body, NOW, TOLERANCE), Ok(()));
        let both = format!("{} {signature}", sign(&other, &id, timestamp, &body));
        prop_assert_eq!(verify(&secret, &id, &ts, &both, &body, NOW, TOLERANCE), Ok(()));

        if !body.is_empty() {
            let mut changed = body.clone();
            changed[flip.index(body.len())] ^= 1;
            prop_assert!(verify(&secret, &id, &ts, &signature, &changed, NOW, TOLERANCE).is_err());
        }
        let other_id = format!("{id}x");
        prop_assert!(verify(&secret, &other_id, &ts, &signature, &body, NOW, TOLERANCE).is_err());
        let other_ts = (timestamp + 1).to_string();
        prop_assert!(verify(&secret, &id, &other_ts, &signature, &body, NOW, TOLERANCE).is_err());
    }
}
