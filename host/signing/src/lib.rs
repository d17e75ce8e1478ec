//! Standard Webhooks signing (<https://www.standardwebhooks.com>): the
//! subscription secret (`whsec_<base64>`), the `webhook-signature` value
//! hookshape puts on every outgoing request, and the receiver-side check that
//! the examples and end-to-end tests use. The signed content is
//! `{webhook-id}.{webhook-timestamp}.{body}`, HMAC-SHA256 keyed with the
//! decoded secret.
//!
//! A crate of its own, so that receivers share it without building the
//! dispatcher (wasmtime, sled); `tests/reference.rs` checks it against the
//! reference `standardwebhooks` crate.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Sha256;

/// Header carrying the message id (hookshape's event id).
pub const HEADER_ID: &str = "webhook-id";
/// Header carrying the attempt's Unix time in seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying one or more space-separated `v1,<base64>` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// The replay window Standard Webhooks recommends for receivers.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

const PREFIX: &str = "whsec_";
const GENERATED_LEN: usize = 32;
const MIN_LEN: usize = 24;
const MAX_LEN: usize = 64;

type HmacSha256 = Hmac<Sha256>;

/// A signing key. Shown and stored as `whsec_<base64>`; `Debug` never prints it.
#[derive(Clone)]
pub struct Secret {
    key: Vec<u8>,
}

/// Why a secret string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// It does not start with `whsec_`.
    #[error("a webhook secret must start with \"whsec_\"")]
    MissingPrefix,
    /// The key after `whsec_` is not standard base64.
    #[error("the part of a webhook secret after \"whsec_\" must be standard base64")]
    NotBase64,
    /// The key is too short or too long; holds its length in bytes.
    #[error("a webhook secret must hold {MIN_LEN} to {MAX_LEN} bytes, this one holds {0}")]
    BadLength(usize),
}

/// Why a received message failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// `webhook-timestamp` is not a Unix time in seconds.
    #[error("webhook-timestamp is not a Unix time in seconds")]
    BadTimestamp,
    /// The message is older than the tolerance allows (a replay, or a slow queue).
    #[error("webhook-timestamp {timestamp} is older than the tolerance allows (now {now})")]
    TooOld {
        /// The message's timestamp, in Unix seconds.
        timestamp: u64,
        /// The verifier's clock, in Unix seconds.
        now: u64,
    },
    /// The message is dated further ahead than the tolerance allows.
    #[error(
        "webhook-timestamp {timestamp} is further in the future than the tolerance allows (now {now})"
    )]
    TooNew {
        /// The message's timestamp, in Unix seconds.
        timestamp: u64,
        /// The verifier's clock, in Unix seconds.
        now: u64,
    },
    /// No `v1` signature matches: wrong secret, or the message was changed.
    #[error("no v1 signature in webhook-signature matches the message")]
    NoMatchingSignature,
}

impl Secret {
    /// A fresh key of 32 bytes from the thread-local CSPRNG.
    pub fn generate() -> Secret {
        Secret {
            key: rand::random::<[u8; GENERATED_LEN]>().to_vec(),
        }
    }

    /// Parses `whsec_` followed by the standard base64 of 24 to 64 bytes.
    pub fn parse(s: &str) -> Result<Secret, SigningError> {
        let encoded = s.strip_prefix(PREFIX).ok_or(SigningError::MissingPrefix)?;
        let key = BASE64
            .decode(encoded)
            .map_err(|_| SigningError::NotBase64)?;
        if !(MIN_LEN..=MAX_LEN).contains(&key.len()) {
            return Err(SigningError::BadLength(key.len()));
        }
        Ok(Secret { key })
    }

    /// The `whsec_<base64>` form, as shown to the subscriber.
    pub fn to_whsec(&self) -> String {
        format!("{PREFIX}{}", BASE64.encode(&self.key))
    }

    fn mac(&self, msg_id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.key).expect("HMAC accepts keys of any length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_whsec())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(whsec_<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = SigningError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Secret::parse(s)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_whsec())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Secret::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The `webhook-signature` value for one attempt: `v1,<base64 HMAC-SHA256>`.
pub fn sign(secret: &Secret, msg_id: &str, timestamp_secs: u64, body: &[u8]) -> String {
    let tag = secret
        .mac(msg_id, &timestamp_secs.to_string(), body)
        .finalize()
        .into_bytes();
    format!("v1,{}", BASE64.encode(tag))
}

/// The `webhook-signature` value signed with each key in turn: one `v1,`
/// entry per key, space-separated (as during a key rotation).
pub fn sign_all<'a>(
    secrets: impl IntoIterator<Item = &'a Secret>,
    msg_id: &str,
    timestamp_secs: u64,
    body: &[u8],
) -> String {
    secrets
        .into_iter()
        .map(|s| sign(s, msg_id, timestamp_secs, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Receiver-side check of a signed message.
///
/// The timestamp must lie within `tolerance` of `now_secs` on either side
/// (replay protection). The signature header may list several
/// space-separated signatures (key rotation); one matching `v1` entry is
/// enough, and each comparison is constant-time. Entries of other versions
/// or with malformed base64 are ignored.
pub fn verify(
    secret: &Secret,
    msg_id: &str,
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now_secs: u64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let timestamp: u64 = timestamp_header
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    let tolerance = tolerance.as_secs();
    if now_secs.saturating_sub(timestamp) > tolerance {
        return Err(VerifyError::TooOld {
            timestamp,
            now: now_secs,
        });
    }
    if timestamp.saturating_sub(now_secs) > tolerance {
        return Err(VerifyError::TooNew {
            timestamp,
            now: now_secs,
        });
    }

    // Sign the header text as received, so the check covers exactly what the sender signed.
    let mac = secret.mac(msg_id, timestamp_header.trim(), body);
    let matched = signature_header
        .split_ascii_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| BASE64.decode(encoded).ok())
        .any(|candidate| mac.clone().verify_slice(&candidate).is_ok());
    if matched {
        Ok(())
    } else {
        Err(VerifyError::NoMatchingSignature)
    }
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks reference test vector.
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TS: u64 = 1614265330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn vector_secret() -> Secret {
        Secret::parse(VECTOR_SECRET).unwrap()
    }

    fn check(ts: &str, sig: &str, id: &str, body: &[u8], now: u64) -> Result<(), VerifyError> {
        verify(&vector_secret(), id, ts, sig, body, now, DEFAULT_TOLERANCE)
    }

    #[test]
    fn signs_the_reference_vector() {
        assert_eq!(
            sign(&vector_secret(), VECTOR_ID, VECTOR_TS, VECTOR_BODY),
            VECTOR_SIG
        );
    }

    #[test]
    fn sign_all_lists_one_entry_per_key_in_order() {
        let other = Secret::generate();
        let both = sign_all(
            [&vector_secret(), &other],
            VECTOR_ID,
            VECTOR_TS,
            VECTOR_BODY,
        );
        let other_sig = sign(&other, VECTOR_ID, VECTOR_TS, VECTOR_BODY);
        assert_eq!(both, format!("{VECTOR_SIG} {other_sig}"));
        let ts = VECTOR_TS.to_string();
        assert_eq!(check(&ts, &both, VECTOR_ID, VECTOR_BODY, VECTOR_TS), Ok(()));
        assert_eq!(
            sign_all([&other], VECTOR_ID, VECTOR_TS, VECTOR_BODY),
            other_sig
        );
    }

    #[test]
    fn verifies_the_reference_vector() {
        let ts = VECTOR_TS.to_string();
        assert_eq!(
            check(&ts, VECTOR_SIG, VECTOR_ID, VECTOR_BODY, VECTOR_TS),
            Ok(())
        );
    }

    #[test]
    fn rejects_tampered_body_id_and_timestamp() {
        let ts = VECTOR_TS.to_string();
        let now = VECTOR_TS;
        assert_eq!(
            check(&ts, VECTOR_SIG, VECTOR_ID, br#"{"test": 2432232315}"#, now),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(
            check(&ts, VECTOR_SIG, "msg_other", VECTOR_BODY, now),
            Err(VerifyError::NoMatchingSignature)
        );
        let later = (VECTOR_TS + 1).to_string();
        assert_eq!(
            check(&later, VECTOR_SIG, VECTOR_ID, VECTOR_BODY, now),
            Err(VerifyError::NoMatchingSignature)
        );
        let other_key = Secret::generate();
        assert_eq!(
            verify(
                &other_key,
                VECTOR_ID,
                &ts,
                VECTOR_SIG,
                VECTOR_BODY,
                now,
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let ts = VECTOR_TS.to_string();
        let rotated = sign(&Secret::generate(), VECTOR_ID, VECTOR_TS, VECTOR_BODY);
        let header = format!("v1a,abc {rotated} v1,!!notbase64 {VECTOR_SIG}");
        assert_eq!(
            check(&ts, &header, VECTOR_ID, VECTOR_BODY, VECTOR_TS),
            Ok(())
        );
        let none = format!("{rotated} v2,{}", &VECTOR_SIG[3..]);
        assert_eq!(
            check(&ts, &none, VECTOR_ID, VECTOR_BODY, VECTOR_TS),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(
            check(&ts, "", VECTOR_ID, VECTOR_BODY, VECTOR_TS),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn timestamps_outside_the_tolerance_are_rejected() {
        let ts = VECTOR_TS.to_string();
        let window = DEFAULT_TOLERANCE.as_secs();
        for now in [VECTOR_TS - window, VECTOR_TS + window] {
            assert_eq!(check(&ts, VECTOR_SIG, VECTOR_ID, VECTOR_BODY, now), Ok(()));
        }
        assert_eq!(
            check(
                &ts,
                VECTOR_SIG,
                VECTOR_ID,
                VECTOR_BODY,
                VECTOR_TS + window + 1
            ),
            Err(VerifyError::TooOld {
                timestamp: VECTOR_TS,
                now: VECTOR_TS + window + 1
            })
        );
        assert_eq!(
            check(
                &ts,
                VECTOR_SIG,
                VECTOR_ID,
                VECTOR_BODY,
                VECTOR_TS - window - 1
            ),
            Err(VerifyError::TooNew {
                timestamp: VECTOR_TS,
                now: VECTOR_TS - window - 1
            })
        );
        for bad in ["", "soon", "-5", "1614265330.5"] {
            assert_eq!(
                check(bad, VECTOR_SIG, VECTOR_ID, VECTOR_BODY, VECTOR_TS),
                Err(VerifyError::BadTimestamp)
            );
        }
    }

    #[test]
    fn round_trips_a_generated_secret() {
        let secret = Secret::generate();
        let whsec = secret.to_whsec();
        assert!(whsec.starts_with("whsec_"));
        let parsed = Secret::parse(&whsec).unwrap();
        assert_eq!(parsed.to_whsec(), whsec);
        assert_eq!(parsed.key.len(), 32);
        assert_ne!(Secret::generate().to_whsec(), whsec);

        let sig = sign(&secret, "evt_1", 1_700_000_000, b"{}");
        assert_eq!(
            verify(
                &parsed,
                "evt_1",
                "1700000000",
                &sig,
                b"{}",
                1_700_000_010,
                DEFAULT_TOLERANCE
            ),
            Ok(())
        );
    }

    #[test]
    fn parse_rejects_malformed_secrets() {
        assert_eq!(
            Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(),
            SigningError::MissingPrefix
        );
        assert_eq!(
            Secret::parse("whsec_not base64!").unwrap_err(),
            SigningError::NotBase64
        );
        let short = format!("whsec_{}", BASE64.encode([7u8; 23]));
        assert_eq!(
            Secret::parse(&short).unwrap_err(),
            SigningError::BadLength(23)
        );
        let long = format!("whsec_{}", BASE64.encode([7u8; 65]));
        assert_eq!(
            Secret::parse(&long).unwrap_err(),
            SigningError::BadLength(65)
        );
        let max = format!("whsec_{}", BASE64.encode([7u8; 64]));
        assert!(Secret::parse(&max).is_ok());
    }

    #[test]
    fn debug_hides_the_key_and_serde_uses_whsec() {
        let secret = vector_secret();
        let debug = format!("{secret:?}");
        assert!(
            !debug.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "{debug}"
        );
        assert_eq!(secret.to_string(), VECTOR_SECRET);

        let json = serde_json::to_string(&secret).unwrap();
        assert_eq!(json, format!("\"{VECTOR_SECRET}\""));
        let back: Secret = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_whsec(), VECTOR_SECRET);
        assert!(serde_json::from_str::<Secret>("\"whsec_\"").is_err());
    }
}
