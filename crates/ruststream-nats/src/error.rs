//! [`NatsError`]: everything that can go wrong in this crate.
//!
//! Errors of the client library are kept as text that went through the config's
//! redaction, so no credential can reach an error message, a log line or a test report.

/// An error of the NATS broker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// The configuration cannot work.
    #[error("invalid NATS configuration: {0}")]
    Config(String),
    /// Connecting to the server failed.
    #[error(
        "cannot connect to NATS at {servers}: {reason}; check that the server runs and the URL, credentials and TLS settings are right"
    )]
    Connect {
        /// The servers tried, credentials redacted.
        servers: String,
        /// Why.
        reason: String,
    },
    /// The broker was used before `connect`.
    #[error("the NATS broker is not connected: call `connect()` first (the app does it on start)")]
    NotConnected,
    /// The broker was shut down.
    #[error("the NATS broker is shut down; create a new `NatsBroker` to connect again")]
    Closed,
    /// A subject NATS does not accept here.
    #[error("{0}")]
    Subject(String),
    /// A header NATS cannot carry unchanged.
    #[error("header `{name}` cannot be sent over NATS: {reason}")]
    Header {
        /// The header name.
        name: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// Publishing failed.
    #[error("publishing to `{subject}` failed: {reason}")]
    Publish {
        /// The subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// A request got no reply.
    #[error("the request to `{subject}` failed: {reason}")]
    Request {
        /// The subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// Subscribing failed.
    #[error("subscribing to `{subject}` failed: {reason}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// A JetStream stream or consumer operation failed.
    #[error("JetStream: {0}")]
    JetStream(String),
    /// Receiving from a subscription failed.
    #[error("receiving from `{subject}` failed: {reason}")]
    Receive {
        /// The subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// Flushing or closing the connection failed.
    #[error("shutting the NATS connection down: {0}")]
    Shutdown(String),
}
