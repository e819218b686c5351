//! Failure policies: what happens to a message whose handling failed.

use std::time::Duration;

/// What to do with a message that could not be decoded, whose handler returned an error,
/// or whose handler panicked. Each of the three has its own policy on a subscriber.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Settle it as rejected (`nack(false)`): the broker drops it or dead-letters it by its
    /// own configuration.
    Drop,
    /// Ask for immediate redelivery (`nack(true)`).
    Retry,
    /// Redeliver after a delay that grows with each attempt, through the broker's
    /// `nack_after` (its durable delayed redelivery, or an immediate requeue where it has
    /// none). The broker holds the message meanwhile.
    Backoff(Backoff),
    /// Call the handler again in the same worker, up to `attempts` calls in all, waiting
    /// `backoff` between them (as Watermill's Retry middleware does). Works on every
    /// broker, even one that cannot redeliver, but it is not durable: a crash during the
    /// wait leaves the message to the broker's own redelivery, if any. When every call
    /// failed, the message is dead-lettered if a destination is set, else dropped.
    /// Batch handlers are not called again: for them it gives up at once.
    RetryInPlace {
        /// Calls in all, the first included (at least 1).
        attempts: u32,
        /// The wait before each new call.
        backoff: Backoff,
    },
    /// Publish it to the subscriber's dead-letter destination, then ack it.
    DeadLetter,
    /// Leave it unsettled (the broker redelivers it later) and stop the whole service.
    Stop,
}

/// Exponential backoff with jitter: attempt `n` waits about `initial * multiplier^(n-1)`,
/// capped at `max`, spread by ±`jitter` (a fraction) so that retries of many messages do
/// not arrive together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The delay before the first retry.
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
    /// The growth factor per attempt (at least 1).
    pub multiplier: f64,
    /// The random spread, as a fraction of the delay (0 to 1).
    pub jitter: f64,
}

impl Backoff {
    /// Doubling delays from `initial` up to `max`, with ±20 % jitter.
    pub fn exponential(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            multiplier: 2.0,
            jitter: 0.2,
        }
    }

    /// Sets the growth factor.
    #[must_use]
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// Sets the random spread (clamped to 0..=1).
    #[must_use]
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// The delay before retry number `attempt` (1 for the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let base = self.initial.as_secs_f64() * self.multiplier.max(1.0).powi(exponent);
        let capped = base.min(self.max.as_secs_f64());
        let jitter = self.jitter.clamp(0.0, 1.0);
        let spread = 1.0 + jitter * (fastrand::f64() * 2.0 - 1.0);
        Duration::try_from_secs_f64((capped * spread).max(0.0)).unwrap_or(self.max)
    }
}

impl Default for Backoff {
    /// 100 ms doubling up to 30 s, ±20 % jitter.
    fn default() -> Self {
        Self::exponential(Duration::from_millis(100), Duration::from_secs(30))
    }
}

/// The three failure policies of a subscriber and the attempt limit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failures {
    pub(crate) on_decode_error: Option<FailurePolicy>,
    pub(crate) on_error: FailurePolicy,
    pub(crate) on_panic: Option<FailurePolicy>,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) dead_letter: Option<String>,
}

impl Default for Failures {
    fn default() -> Self {
        Self {
            on_decode_error: None,
            on_error: FailurePolicy::Backoff(Backoff::default()),
            on_panic: None,
            max_attempts: None,
            dead_letter: None,
        }
    }
}

impl Failures {
    /// Undecodable input never decodes on a retry: dead-letter it when there is a
    /// dead-letter destination, else drop it.
    pub(crate) fn decode_policy(&self) -> FailurePolicy {
        self.on_decode_error
            .clone()
            .unwrap_or(if self.dead_letter.is_some() {
                FailurePolicy::DeadLetter
            } else {
                FailurePolicy::Drop
            })
    }

    /// A panic is handled like an error unless told otherwise.
    pub(crate) fn panic_policy(&self) -> FailurePolicy {
        self.on_panic
            .clone()
            .unwrap_or_else(|| self.on_error.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let backoff =
            Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1)).jitter(0.0);
        assert_eq!(backoff.delay(1), Duration::from_millis(100));
        assert_eq!(backoff.delay(2), Duration::from_millis(200));
        assert_eq!(backoff.delay(4), Duration::from_millis(800));
        assert_eq!(backoff.delay(5), Duration::from_secs(1));
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_its_spread() {
        let backoff = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(10));
        for _ in 0..1000 {
            let delay = backoff.delay(1).as_secs_f64();
            assert!((0.8..=1.2).contains(&delay), "{delay}");
        }
    }

    #[test]
    fn decode_failures_dead_letter_only_with_a_destination() {
        let mut failures = Failures::default();
        assert_eq!(failures.decode_policy(), FailurePolicy::Drop);
        failures.dead_letter = Some("dlq".into());
        assert_eq!(failures.decode_policy(), FailurePolicy::DeadLetter);
        assert_eq!(failures.panic_policy(), failures.on_error);
    }
}
