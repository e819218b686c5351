//! [`MemoryError`].

use std::time::Duration;

/// Errors of the memory broker. Each says what happened and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryError {
    /// The broker was used before `connect()`.
    #[error("the memory broker is not connected: call `connect()` first")]
    NotConnected,
    /// The broker was used after `shutdown()`.
    #[error("the memory broker was shut down: call `connect()` again to reuse it")]
    Closed,
    /// A publish name the matching rule refuses.
    #[error("invalid name: {0}")]
    InvalidName(String),
    /// A subscription pattern the matching rule refuses.
    #[error("invalid subscription: {0}")]
    InvalidPattern(String),
    /// A payload larger than [`MemoryConfig::max_payload`](super::MemoryConfig::max_payload).
    #[error(
        "payload of {size} bytes for `{name}` exceeds the limit of {limit} bytes: raise `MemoryConfig::max_payload` or send less"
    )]
    PayloadTooLarge {
        /// The destination.
        name: String,
        /// The payload size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A subscription queue stayed full for the whole publish timeout.
    #[error(
        "subscribers of `{name}` did not take messages for {waited:?} (queue full): consume faster, or raise `MemoryConfig::queue_capacity` or `publish_timeout`"
    )]
    Backpressure {
        /// The destination.
        name: String,
        /// How long the publish waited.
        waited: Duration,
    },
    /// A request to a name nobody subscribes to.
    #[error("no subscriber for request to `{0}`")]
    NoResponders(String),
    /// A request nobody answered in time.
    #[error("request to `{name}` got no reply within {timeout:?}")]
    RequestTimeout {
        /// The destination.
        name: String,
        /// The timeout given.
        timeout: Duration,
    },
}
