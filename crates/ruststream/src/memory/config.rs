//! [`MemoryConfig`].

use std::time::Duration;

/// Settings of an in-process memory broker. Every field has a sane default.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryConfig {
    /// Messages a subscription queue holds before publishers wait (back-pressure).
    /// Default 1024; at least 1.
    pub queue_capacity: usize,
    /// Largest payload accepted by `publish`, in bytes. Default 64 MiB.
    pub max_payload: usize,
    /// How long a publish waits for room in a full queue before failing with
    /// [`MemoryError::Backpressure`](super::MemoryError::Backpressure). Default 5 s.
    pub publish_timeout: Duration,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 1024,
            max_payload: 64 * 1024 * 1024,
            publish_timeout: Duration::from_secs(5),
        }
    }
}

impl MemoryConfig {
    /// Sets [`queue_capacity`](Self::queue_capacity) (0 is taken as 1).
    #[must_use]
    pub fn with_queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// Sets [`max_payload`](Self::max_payload).
    #[must_use]
    pub fn with_max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// Sets [`publish_timeout`](Self::publish_timeout).
    #[must_use]
    pub fn with_publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = timeout;
        self
    }
}
