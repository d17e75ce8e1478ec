//! What an attempt's result means for the delivery: done, retry when, or give up.
//!
//! Pure functions over status codes and the retry schedule, so every rule of
//! the contract's delivery semantics is unit-tested without a network.

use std::time::Duration;

/// The longest `Retry-After` honoured; longer values fall back to the schedule.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How one attempt went, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: the delivery is done.
    Delivered,
    /// Worth another try (network error, timeout, 3xx, 408, 425, 429, 5xx,
    /// plugin failure), with the receiver's `Retry-After` if it sent one.
    Retryable {
        /// How long the receiver asked to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// Fails at once (other 4xx, refused target).
    Permanent,
    /// 410 Gone: fails at once and disables the subscription.
    Gone,
}

/// What happens next to the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The delivery is done.
    Delivered,
    /// Try again after this long.
    RetryIn(Duration),
    /// No more attempts: the delivery is `failed`.
    GiveUp,
}

/// What an HTTP status (and the receiver's `Retry-After`) means for the delivery.
pub fn classify_status(status: u16, retry_after: Option<Duration>) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        410 => Verdict::Gone,
        300..=399 | 408 | 425 | 429 | 500..=599 => Verdict::Retryable { retry_after },
        _ => Verdict::Permanent,
    }
}

/// `attempts_made` counts the attempt just finished (1 after the first).
/// The schedule lists the waits before retries 1..n; a longer `Retry-After`
/// (up to [`MAX_RETRY_AFTER`]) replaces the scheduled wait.
pub fn next(verdict: Verdict, attempts_made: u32, schedule: &[Duration]) -> Next {
    match verdict {
        Verdict::Delivered => Next::Delivered,
        Verdict::Permanent | Verdict::Gone => Next::GiveUp,
        Verdict::Retryable { retry_after } => {
            let Some(&scheduled) = schedule.get(attempts_made.saturating_sub(1) as usize) else {
                return Next::GiveUp;
            };
            let wait = match retry_after {
                Some(ra) if ra > scheduled && ra <= MAX_RETRY_AFTER => ra,
                _ => scheduled,
            };
            Next::RetryIn(wait)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: [Duration; 3] = [
        Duration::from_secs(5),
        Duration::from_secs(300),
        Duration::from_secs(1800),
    ];

    #[test]
    fn statuses_follow_the_contract() {
        for ok in [200, 201, 204, 299] {
            assert_eq!(classify_status(ok, None), Verdict::Delivered);
        }
        for retry in [301, 302, 307, 408, 425, 429, 500, 502, 503, 599] {
            assert!(
                matches!(classify_status(retry, None), Verdict::Retryable { .. }),
                "{retry}"
            );
        }
        for fail in [400, 401, 403, 404, 405, 413, 422] {
            assert_eq!(classify_status(fail, None), Verdict::Permanent, "{fail}");
        }
        assert_eq!(classify_status(410, None), Verdict::Gone);
    }

    #[test]
    fn retries_walk_the_schedule_then_give_up() {
        let r = Verdict::Retryable { retry_after: None };
        assert_eq!(next(r, 1, &S), Next::RetryIn(S[0]));
        assert_eq!(next(r, 3, &S), Next::RetryIn(S[2]));
        assert_eq!(next(r, 4, &S), Next::GiveUp);
        assert_eq!(next(r, 1, &[]), Next::GiveUp);
        assert_eq!(next(Verdict::Permanent, 1, &S), Next::GiveUp);
        assert_eq!(next(Verdict::Gone, 1, &S), Next::GiveUp);
        assert_eq!(next(Verdict::Delivered, 1, &S), Next::Delivered);
    }

    #[test]
    fn retry_after_replaces_a_shorter_wait_up_to_an_hour() {
        let longer = Verdict::Retryable {
            retry_after: Some(Duration::from_secs(60)),
        };
        assert_eq!(next(longer, 1, &S), Next::RetryIn(Duration::from_secs(60)));
        let shorter = Verdict::Retryable {
            retry_after: Some(Duration::from_secs(1)),
        };
        assert_eq!(next(shorter, 1, &S), Next::RetryIn(S[0]));
        let absurd = Verdict::Retryable {
            retry_after: Some(Duration::from_secs(86_400)),
        };
        assert_eq!(next(absurd, 1, &S), Next::RetryIn(S[0]));
        let last = Verdict::Retryable {
            retry_after: Some(Duration::from_secs(60)),
        };
        assert_eq!(
            next(last, 4, &S),
            Next::GiveUp,
            "Retry-After never adds attempts"
        );
    }
}
