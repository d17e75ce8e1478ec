//! What every request passes before the service looks at it: the `--fail-first` outage that
//! answers 503 to the first N requests (to demo retries), then, when a secret is set, the
//! Standard Webhooks signature check.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use hookshape_signing::{Secret, VerifyError};
use serde::Serialize;

/// How a receiver treats requests before parsing them.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// When set, requests must carry a valid Standard Webhooks signature for this secret.
    pub secret: Option<Secret>,
    /// How far `webhook-timestamp` may be from now.
    pub tolerance: Duration,
    /// How many requests, from the first, get 503.
    pub fail_first: u64,
}

impl Default for GateConfig {
    /// No secret, no planned failures, the Standard Webhooks tolerance.
    fn default() -> Self {
        GateConfig {
            secret: None,
            tolerance: hookshape_signing::DEFAULT_TOLERANCE,
            fail_first: 0,
        }
    }
}

/// Whether the signature of an accepted request was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureCheck {
    /// A secret is configured and the signature matched.
    Verified,
    /// No secret is configured.
    NotChecked,
}

/// Why a request was turned away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// One of the first `--fail-first` requests.
    Unavailable,
    /// A `webhook-*` header is missing or not text.
    MissingSignature(&'static str),
    /// The signature or timestamp did not verify.
    BadSignature(VerifyError),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Unavailable => f.write_str("failing on purpose (--fail-first)"),
            Refusal::MissingSignature(header) => write!(f, "the {header} header is missing"),
            Refusal::BadSignature(error) => write!(f, "{error}"),
        }
    }
}

/// The gate: a countdown of planned failures and an optional secret.
#[derive(Debug)]
pub struct Gate {
    secret: Option<Secret>,
    tolerance: Duration,
    failures_left: AtomicU64,
}

impl Gate {
    /// A gate with this secret, tolerance and number of requests to fail first.
    pub fn new(config: GateConfig) -> Gate {
        Gate {
            secret: config.secret,
            tolerance: config.tolerance,
            failures_left: AtomicU64::new(config.fail_first),
        }
    }

    /// Counts the request against `--fail-first`; `Err` while planned failures remain.
    pub fn take_failure(&self) -> Result<(), Refusal> {
        let failing = self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            Err(Refusal::Unavailable)
        } else {
            Ok(())
        }
    }

    /// Checks the signature when a secret is configured.
    pub fn check_signature(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<SignatureCheck, Refusal> {
        let Some(secret) = &self.secret else {
            return Ok(SignatureCheck::NotChecked);
        };
        let header = |name: &'static str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or(Refusal::MissingSignature(name))
        };
        let id = header(hookshape_signing::HEADER_ID)?;
        let timestamp = header(hookshape_signing::HEADER_TIMESTAMP)?;
        let signature = header(hookshape_signing::HEADER_SIGNATURE)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        hookshape_signing::verify(secret, id, timestamp, signature, body, now, self.tolerance)
            .map_err(Refusal::BadSignature)?;
        Ok(SignatureCheck::Verified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn fails_exactly_the_first_n_requests() {
        let gate = Gate::new(GateConfig {
            fail_first: 2,
            ..GateConfig::default()
        });
        assert_eq!(gate.take_failure(), Err(Refusal::Unavailable));
        assert_eq!(gate.take_failure(), Err(Refusal::Unavailable));
        assert_eq!(gate.take_failure(), Ok(()));
        assert_eq!(gate.take_failure(), Ok(()));
    }

    #[test]
    fn checks_signatures_only_with_a_secret() {
        let open = Gate::new(GateConfig::default());
        assert_eq!(
            open.check_signature(&HeaderMap::new(), b"{}"),
            Ok(SignatureCheck::NotChecked)
        );

        let secret = Secret::generate();
        let gate = Gate::new(GateConfig {
            secret: Some(secret.clone()),
            ..GateConfig::default()
        });
        assert_eq!(
            gate.check_signature(&HeaderMap::new(), b"{}"),
            Err(Refusal::MissingSignature(hookshape_signing::HEADER_ID))
        );

        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut headers = HeaderMap::new();
        headers.insert(
            hookshape_signing::HEADER_ID,
            HeaderValue::from_static("evt_1"),
        );
        headers.insert(
            hookshape_signing::HEADER_TIMESTAMP,
            now.to_string().parse().unwrap(),
        );
        let signature = hookshape_signing::sign(&secret, "evt_1", now, b"{}");
        headers.insert(
            hookshape_signing::HEADER_SIGNATURE,
            signature.parse().unwrap(),
        );
        assert_eq!(
            gate.check_signature(&headers, b"{}"),
            Ok(SignatureCheck::Verified)
        );
        assert_eq!(
            gate.check_signature(&headers, b"{\"x\":1}"),
            Err(Refusal::BadSignature(VerifyError::NoMatchingSignature))
        );
    }
}
