//! [`RedisError`]: every error of this crate, by what failed.

/// An error of the Redis broker. Texts hold no credential: every text that came from
/// redis-rs passed through [`Config::redact`](crate::Config::redact).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The configuration cannot be used.
    #[error("invalid Redis configuration: {0}")]
    Config(String),
    /// The connection to the server could not be established.
    #[error(
        "cannot connect to Redis at {url}: {reason}; check that the server runs and the URL, credentials and TLS settings are right"
    )]
    Connect {
        /// The server URL, redacted.
        url: String,
        /// What failed, redacted.
        reason: String,
    },
    /// The broker was used before `connect`.
    #[error("the Redis broker is not connected: call `connect` first")]
    NotConnected,
    /// The broker was shut down.
    #[error("the Redis broker was shut down; create a new `RedisBroker` to connect again")]
    Closed,
    /// A header cannot be carried.
    #[error("header `{name}` cannot be sent over Redis: {reason}")]
    Header {
        /// The header's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A publish failed.
    #[error("cannot publish to Redis `{name}`: {reason}")]
    Publish {
        /// The channel, list or stream.
        name: String,
        /// What failed, redacted.
        reason: String,
    },
    /// A subscription could not be opened.
    #[error("cannot subscribe to Redis `{name}`: {reason}")]
    Subscribe {
        /// The channel, pattern, list or stream.
        name: String,
        /// What failed, redacted.
        reason: String,
    },
    /// Receiving failed.
    #[error("cannot receive from Redis `{name}`: {reason}")]
    Receive {
        /// The channel, pattern, list or stream.
        name: String,
        /// What failed, redacted.
        reason: String,
    },
    /// A request got no reply in time, or failed.
    #[error("request to Redis `{name}` failed: {reason}")]
    Request {
        /// Where the request went.
        name: String,
        /// What failed.
        reason: String,
    },
    /// A transaction failed.
    #[error("Redis transaction (MULTI/EXEC) failed: {0}; nothing of it was published")]
    Transaction(String),
}
