//! The crate's one error type.

/// What went wrong talking to an MQTT server. Every text is redacted: no password or other
/// configured secret appears in it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MqttError {
    /// The configuration cannot be used.
    #[error("invalid MQTT configuration: {0}")]
    Config(String),
    /// The connection could not be established or was refused.
    #[error(
        "cannot connect to the MQTT server: {0}; check host, port, credentials and TLS in `Config`"
    )]
    Connect(String),
    /// A topic or topic filter is not valid.
    #[error("{0}")]
    Topic(String),
    /// A header cannot be carried by the protocol version in use.
    #[error("{0}")]
    Header(String),
    /// A publish failed or was refused by the server.
    #[error("MQTT publish to `{topic}` failed: {reason}")]
    Publish {
        /// The topic published to.
        topic: String,
        /// Why.
        reason: String,
    },
    /// A subscription failed or was refused by the server.
    #[error("MQTT subscription to `{filter}` failed: {reason}")]
    Subscribe {
        /// The topic filter.
        filter: String,
        /// Why.
        reason: String,
    },
    /// A request got no reply in time, or request-reply is not available.
    #[error("MQTT request to `{topic}` failed: {reason}")]
    Request {
        /// The topic of the request.
        topic: String,
        /// Why.
        reason: String,
    },
    /// The broker was shut down; create a new `MqttBroker` to connect again.
    #[error("the MQTT broker was shut down; create a new `MqttBroker` to connect again")]
    Closed,
    /// The broker is not connected yet: call `connect` first.
    #[error("the MQTT broker is not connected: call `connect` (or start the app) first")]
    NotConnected,
    /// `shutdown` could not complete cleanly.
    #[error("MQTT shutdown: {0}")]
    Shutdown(String),
    /// An error of the in-process test client.
    #[cfg(feature = "testing")]
    #[error(transparent)]
    InProcess(#[from] ruststream::memory::MemoryError),
}
