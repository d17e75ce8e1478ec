//! Interoperability with the reference implementation, the `standardwebhooks`
//! crate: what one signs the other verifies, with the same secret, id,
//! timestamp and body, including a header that lists several signatures.
//! The reference checks its timestamp against the real clock, so every
//! message here is stamped now.

use std::time::{SystemTime, UNIX_EPOCH};

use hookshape_signing::{
    DEFAULT_TOLERANCE, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, Secret, VerifyError, sign,
    verify,
};
use http::{HeaderMap, HeaderValue};
use standardwebhooks::{Webhook, WebhookError};

const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

fn reference(secret: &Secret) -> Webhook {
    Webhook::new(&secret.to_whsec()).expect("the reference accepts a whsec_ secret")
}

fn headers(id: &str, timestamp: u64, signature: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(HEADER_ID, HeaderValue::from_str(id).unwrap());
    headers.insert(HEADER_TIMESTAMP, HeaderValue::from(timestamp));
    headers.insert(HEADER_SIGNATURE, HeaderValue::from_str(signature).unwrap());
    headers
}

fn ours_verify(
    secret: &Secret,
    timestamp: u64,
    signature: &str,
    body: &[u8],
) -> Result<(), VerifyError> {
    verify(
        secret,
        ID,
        &timestamp.to_string(),
        signature,
        body,
        now(),
        DEFAULT_TOLERANCE,
    )
}

#[test]
fn signs_the_reference_crates_own_vector() {
    let secret = Secret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    let expected = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
    assert_eq!(sign(&secret, ID, 1649367553, BODY), expected);
    assert_eq!(
        reference(&secret).sign(ID, 1649367553, BODY).unwrap(),
        expected
    );
}

#[test]
fn the_reference_verifies_what_we_sign() {
    let secret = Secret::generate();
    let ts = now();
    let ours = sign(&secret, ID, ts, BODY);
    assert_eq!(ours, reference(&secret).sign(ID, ts as i64, BODY).unwrap());
    reference(&secret)
        .verify(BODY, &headers(ID, ts, &ours))
        .expect("the reference accepts our signature");

    let tampered = br#"{"email":"test@example.com","username":"other"}"#;
    assert!(matches!(
        reference(&secret).verify(tampered, &headers(ID, ts, &ours)),
        Err(WebhookError::InvalidSignature)
    ));
    assert!(matches!(
        reference(&Secret::generate()).verify(BODY, &headers(ID, ts, &ours)),
        Err(WebhookError::InvalidSignature)
    ));
}

#[test]
fn we_verify_what_the_reference_signs() {
    let secret = Secret::generate();
    let ts = now();
    let theirs = reference(&secret).sign(ID, ts as i64, BODY).unwrap();
    assert_eq!(ours_verify(&secret, ts, &theirs, BODY), Ok(()));

    assert_eq!(
        ours_verify(&secret, ts, &theirs, br#"{"email":"x"}"#),
        Err(VerifyError::NoMatchingSignature)
    );
    assert_eq!(
        ours_verify(&Secret::generate(), ts, &theirs, BODY),
        Err(VerifyError::NoMatchingSignature)
    );
}

#[test]
fn both_accept_any_matching_entry_of_a_multi_signature_header() {
    // Key rotation: the sender signs with the old and the new key; each
    // receiver knows one of them. Entries of another version are skipped.
    let (old, new, unknown) = (Secret::generate(), Secret::generate(), Secret::generate());
    let ts = now() - 30;
    let header = format!(
        "v1a,bm90IGEgdjEgc2lnbmF0dXJl {} {}",
        reference(&old).sign(ID, ts as i64, BODY).unwrap(),
        sign(&new, ID, ts, BODY),
    );
    for receiver in [&old, &new] {
        assert_eq!(ours_verify(receiver, ts, &header, BODY), Ok(()));
        reference(receiver)
            .verify(BODY, &headers(ID, ts, &header))
            .expect("the reference accepts one matching entry");
    }
    assert_eq!(
        ours_verify(&unknown, ts, &header, BODY),
        Err(VerifyError::NoMatchingSignature)
    );
    assert!(matches!(
        reference(&unknown).verify(BODY, &headers(ID, ts, &header)),
        Err(WebhookError::InvalidSignature)
    ));
}
