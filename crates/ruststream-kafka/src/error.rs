//! The crate's one error type.

use ruststream::contract::AckError;

/// What went wrong talking to Kafka. Every message is passed through the config's
/// redactor, so no credential of the [`Config`](crate::Config) shows in it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaError {
    /// The client could not be created or the cluster did not answer.
    #[error(
        "cannot connect to Kafka at {servers}: {reason} (check the bootstrap servers, the security protocol and the credentials)"
    )]
    Connect {
        /// The bootstrap servers, redacted.
        servers: String,
        /// Why.
        reason: String,
    },
    /// An operation needs `connect()` first.
    #[error(
        "the Kafka broker is not connected: call `connect()` (an `App` does it at start) before {0}"
    )]
    NotConnected(&'static str),
    /// The broker was shut down.
    #[error("the Kafka broker is shut down: create a new `KafkaBroker` to connect again")]
    Closed,
    /// A topic name Kafka refuses.
    #[error("topic `{topic}` is not valid: {reason}")]
    Topic {
        /// The name.
        topic: String,
        /// Why Kafka refuses it.
        reason: &'static str,
    },
    /// A subscription option that does not fit.
    #[error("cannot subscribe to {topics}: {reason}")]
    Subscribe {
        /// The topics of the subscription.
        topics: String,
        /// Why, and what to do.
        reason: String,
    },
    /// A publish the cluster did not confirm.
    #[error("publish to topic `{topic}` failed: {reason}")]
    Publish {
        /// The topic.
        topic: String,
        /// Why.
        reason: String,
    },
    /// Creating or deleting topics failed.
    #[error("topic administration failed: {0}")]
    Admin(String),
    /// The consumer reported an error.
    #[error("receiving from Kafka failed: {0}")]
    Receive(String),
    /// Committing offsets failed.
    #[error("committing offsets failed: {0} (the messages will be delivered again)")]
    Commit(String),
    /// The in-process test client refused (feature `testing`).
    #[error("in process: {0}")]
    InProcess(String),
    /// A transaction step failed.
    #[error("Kafka transaction failed at {step}: {reason}")]
    Transaction {
        /// `init`, `begin`, `publish`, `offsets`, `commit` or `abort`.
        step: &'static str,
        /// Why.
        reason: String,
    },
}

impl KafkaError {
    pub(crate) fn publish(topic: &str, reason: impl std::fmt::Display) -> Self {
        Self::Publish {
            topic: topic.to_owned(),
            reason: reason.to_string(),
        }
    }
}

impl From<KafkaError> for AckError {
    fn from(error: KafkaError) -> Self {
        match error {
            KafkaError::Closed => AckError::Closed,
            other => AckError::Transport(Box::new(other)),
        }
    }
}
