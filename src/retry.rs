//! Retries with exponential backoff and full jitter for Kubernetes requests:
//! 409 conflicts, 429 throttling, 5xx and transport errors are retried; any
//! other error is returned at once. Every attempt is bounded by the client's
//! per-request timeout, so a retry loop always ends.

use std::future::Future;
use std::time::Duration;

use tracing::debug;

/// Attempts per request, including the first.
const ATTEMPTS: u32 = 5;
/// First backoff; doubled per attempt up to [`MAX_DELAY`].
const BASE_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);

/// Whether a Kubernetes error is worth another attempt.
pub fn retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => matches!(status.code, 409 | 429 | 500..=599),
        // A server that did not answer in time is not asked again: the
        // user would only wait once more.
        kube::Error::Service(_) => !crate::net::ApiServerError::is_silent(e),
        kube::Error::HyperError(_) => true,
        _ => false,
    }
}

/// Runs `op` until it succeeds, fails for good, or the attempts run out.
pub async fn kube<T, F, Fut>(what: &str, mut op: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < ATTEMPTS && retryable(&e) => {
                let delay = backoff(attempt);
                debug!(attempt, ?delay, "{what}: {e}; retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The delay before retry `attempt` of a Kubernetes request.
pub fn backoff(attempt: u32) -> Duration {
    jittered_backoff(BASE_DELAY, MAX_DELAY, attempt)
}

/// Exponential backoff with full jitter, the one implementation every client
/// of this crate uses: a uniformly random delay between zero and
/// `base × 2^attempt`, at most `max`.
pub fn jittered_backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let bound = base.saturating_mul(1 << attempt.min(16)).min(max);
    let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_jittered() {
        let delays: Vec<Duration> = (1..=20).map(|_| backoff(3)).collect();
        assert!(delays.iter().all(|d| *d <= BASE_DELAY * 8));
        assert!(
            delays.windows(2).any(|w| w[0] != w[1]),
            "jitter spreads the delays"
        );
        assert!((1..40).all(|a| backoff(a) <= MAX_DELAY));
    }

    #[tokio::test]
    async fn retries_transient_errors_then_gives_up_on_permanent_ones() {
        let status = |code| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                ..Default::default()
            }))
        };
        let mut calls = 0;
        let r: Result<u8, _> = kube("t", || {
            calls += 1;
            let e = if calls < 3 { Err(status(503)) } else { Ok(7) };
            async move { e }
        })
        .await;
        assert_eq!((r.ok(), calls), (Some(7), 3));

        let mut calls = 0;
        let r: Result<u8, _> = kube("t", || {
            calls += 1;
            async move { Err(status(403)) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 1, "403 is not retried");
    }
}
