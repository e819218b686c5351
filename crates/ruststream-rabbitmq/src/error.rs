//! [`RabbitError`]: what can go wrong, with what to do about it.

use std::time::Duration;

/// The error of every operation of this crate.
///
/// Variants hold text that has passed through the config's redactor, never the client
/// library's error values, so no credential reaches a log line or an error report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RabbitError {
    /// The configuration cannot work (a URL that does not parse, TLS files that cannot be
    /// read).
    #[error("invalid RabbitMQ configuration: {0}")]
    Config(String),
    /// Connecting to the server failed.
    #[error(
        "cannot connect to RabbitMQ at {url}: {reason}; check that the server runs and the URL, virtual host and credentials are right"
    )]
    Connect {
        /// The server's URL, redacted.
        url: String,
        /// What the client said, redacted.
        reason: String,
    },
    /// The broker was used before `connect`.
    #[error(
        "the RabbitMQ broker is not connected: call `connect` (an `App` does) before publishing or subscribing"
    )]
    NotConnected,
    /// The broker was shut down.
    #[error("the RabbitMQ broker is shut down: create a new `RabbitBroker` to connect again")]
    Closed,
    /// The connection is down and the publish was not sent (or its confirm was lost).
    #[error(
        "the RabbitMQ connection is down ({reason}); the message was not confirmed: publish it again once the connection is back, or set `Config::publish_wait` to wait for it"
    )]
    Disconnected {
        /// Why, redacted.
        reason: String,
    },
    /// A name (queue, exchange, routing key) cannot be used.
    #[error("the name `{name}` cannot be used: {reason}")]
    Name {
        /// The name (cut to 300 bytes).
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A header cannot be carried by AMQP unchanged.
    #[error("the header `{name}` cannot be carried by RabbitMQ: {reason}")]
    Header {
        /// The header's name.
        name: String,
        /// Why, and what to do.
        reason: String,
    },
    /// Declaring or checking an exchange, a queue or a binding failed.
    #[error("declaring {what} failed: {reason}")]
    Topology {
        /// What was declared (`queue \`orders\``).
        what: String,
        /// What the server said, redacted, with the fix where known.
        reason: String,
    },
    /// A mandatory publish matched no queue: the server returned it.
    #[error(
        "the message to exchange `{exchange}` with routing key `{routing_key}` was returned unroutable ({reply}): no queue is bound to receive it; declare and bind the queue first (subscribe to it) or publish to another name"
    )]
    Unroutable {
        /// The exchange (`""`: the default exchange).
        exchange: String,
        /// The routing key.
        routing_key: String,
        /// The server's reply text.
        reply: String,
    },
    /// The server refused the publish (`basic.nack`).
    #[error(
        "the server refused the message to exchange `{exchange}` with routing key `{routing_key}` (basic.nack): the queue may be full (x-overflow reject-publish) or the server out of resources"
    )]
    Nacked {
        /// The exchange.
        exchange: String,
        /// The routing key.
        routing_key: String,
    },
    /// Publishing failed in the client or the channel.
    #[error("publishing failed: {0}")]
    Publish(String),
    /// Opening a consumer failed.
    #[error("subscribing to queue `{queue}` failed: {reason}")]
    Subscribe {
        /// The queue.
        queue: String,
        /// Why, redacted.
        reason: String,
    },
    /// The consumer was cancelled by the server (queue deleted, node down) or its channel
    /// closed; the runtime subscribes again.
    #[error(
        "the consumer of queue `{queue}` was cancelled: {reason}; subscribing again declares the queue again"
    )]
    Cancelled {
        /// The queue.
        queue: String,
        /// Why, redacted.
        reason: String,
    },
    /// A request got no reply in time.
    #[error(
        "no reply to the request to `{name}` within {timeout:?}: is a service consuming it and answering to `reply_to`?"
    )]
    RequestTimeout {
        /// The routing key of the request.
        name: String,
        /// How long it waited.
        timeout: Duration,
    },
    /// A transaction failed.
    #[error("the AMQP transaction failed: {0}; nothing of it was committed")]
    Transaction(String),
    /// Shutting down did not finish cleanly.
    #[error("shutting down the RabbitMQ connection failed: {0}")]
    Shutdown(String),
}

/// `name` shortened for an error message.
pub(crate) fn shown(name: &str) -> String {
    if name.len() <= 300 {
        return name.to_owned();
    }
    let mut end = 300;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &name[..end])
}
