//! [`Backoff`]: growing delays with jitter, for retries of messages and reconnects of
//! connections alike.

use std::time::Duration;

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
}
