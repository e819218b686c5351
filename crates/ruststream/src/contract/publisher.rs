//! Publishing: the [`Publisher`] trait and the borrowed [`OutgoingMessage`].

use std::future::Future;

use crate::contract::Headers;

/// Sends messages to a broker.
pub trait Publisher: Send + Sync {
    /// The error of a failed publish.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Publishes one message. Returns once the broker has taken it, as far as the
    /// transport can tell (a publish acknowledgement where the broker has one).
    fn publish(
        &self,
        msg: OutgoingMessage<'_>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

static NO_HEADERS: Headers = Headers::new();

/// A message to publish. It borrows its name, payload and headers, so publishing does not
/// force an allocation; it is `Copy`, so a retrying publisher can resend it.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingMessage<'a> {
    name: &'a str,
    payload: &'a [u8],
    headers: &'a Headers,
    key: Option<&'a [u8]>,
    reply_to: Option<&'a str>,
}

impl<'a> OutgoingMessage<'a> {
    /// A message with a destination name and a body, no headers.
    pub fn new(name: &'a str, payload: &'a [u8]) -> Self {
        Self {
            name,
            payload,
            headers: &NO_HEADERS,
            key: None,
            reply_to: None,
        }
    }

    /// Attaches headers.
    #[must_use]
    pub fn with_headers(mut self, headers: &'a Headers) -> Self {
        self.headers = headers;
        self
    }

    /// Attaches a partition key (used by brokers with the [`Partitioned`](crate::Partitioned)
    /// capability; others ignore it).
    #[must_use]
    pub fn with_key(mut self, key: &'a [u8]) -> Self {
        self.key = Some(key);
        self
    }

    /// Names where a reply should be sent (request-reply).
    #[must_use]
    pub fn with_reply_to(mut self, reply_to: &'a str) -> Self {
        self.reply_to = Some(reply_to);
        self
    }

    /// The destination name (subject, topic, routing key...).
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The body.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The headers (empty unless set).
    pub fn headers(&self) -> &'a Headers {
        self.headers
    }

    /// The partition key, if set.
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }

    /// The reply destination, if set.
    pub fn reply_to(&self) -> Option<&'a str> {
        self.reply_to
    }
}
