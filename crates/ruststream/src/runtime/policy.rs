//! Failure policies: what happens to a message whose handling failed.

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

pub use crate::kit::Backoff;

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
    fn decode_failures_dead_letter_only_with_a_destination() {
        let mut failures = Failures::default();
        assert_eq!(failures.decode_policy(), FailurePolicy::Drop);
        failures.dead_letter = Some("dlq".into());
        assert_eq!(failures.decode_policy(), FailurePolicy::DeadLetter);
        assert_eq!(failures.panic_policy(), failures.on_error);
    }
}
