//! [`NatsMessage`]: a delivered message, its headers and its settlement.
//!
//! | | core subject | JetStream consumer |
//! |---|---|---|
//! | `ack` | nothing to do (core NATS has no acks): `Ok` | `+ACK`, waiting for the server's confirmation |
//! | `nack(true)` | nothing to do: the message is not redelivered | `-NAK`: redelivered at once |
//! | `nack(false)` | nothing to do | `+TERM`: never redelivered |
//! | `nack_after(d)` | nothing to do | `-NAK {"delay": d}`: redelivered after `d` |
//! | `redelivery_count` | `None`: the server does not redeliver | `delivered - 1` from the message metadata |
//! | `reply_to` | the request's reply subject | `None` (the reply subject is the ack subject) |
//!
//! Because a core message reports no redelivery count, the runtime does not trust its
//! `nack` to redeliver: a retry republishes a copy (with the attempt number and due
//! time), as on every broker without redelivery.

use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, HeaderMap, Subject};
use bytes::Bytes;
use ruststream::{AckError, Headers, IncomingMessage};
use tokio_util::sync::CancellationToken;

/// The NATS headers of a delivered message as [`Headers`] (every value of a name, in
/// order; the order between names is the client's).
pub(crate) fn headers_from_nats(map: &HeaderMap) -> Headers {
    let mut headers = Headers::with_capacity(map.len());
    for (name, values) in map.iter() {
        let name: &str = name.as_ref();
        for value in values {
            headers.append(
                name.to_owned(),
                Bytes::copy_from_slice(value.as_str().as_bytes()),
            );
        }
    }
    headers
}

/// What the messages of one JetStream subscription share for settling.
#[derive(Debug)]
pub(crate) struct Settler {
    pub(crate) client: Client,
    pub(crate) closed: CancellationToken,
    pub(crate) ack_timeout: Duration,
}

impl Settler {
    /// Sends `body` to the ack subject and waits for the server's confirmation.
    async fn settle(&self, ack_subject: Subject, body: Bytes) -> Result<(), AckError> {
        if self.closed.is_cancelled() {
            return Err(AckError::Closed);
        }
        match tokio::time::timeout(self.ack_timeout, self.client.request(ack_subject, body)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => match error.kind() {
                async_nats::RequestErrorKind::TimedOut => Err(AckError::Timeout(self.ack_timeout)),
                async_nats::RequestErrorKind::NoResponders => Err(AckError::Rejected(
                    "the consumer is gone (no responders on its ack subject)".to_owned(),
                )),
                _ if self.closed.is_cancelled() => Err(AckError::Closed),
                _ => Err(AckError::Transport(Box::new(error))),
            },
            Err(_) => Err(AckError::Timeout(self.ack_timeout)),
        }
    }
}

#[derive(Debug)]
enum Kind {
    /// A core message: settlement has nothing to do.
    Core,
    /// A JetStream message: settled on its ack subject.
    JetStream {
        settler: Arc<Settler>,
        ack_subject: Subject,
        delivered: u32,
    },
}

/// A message delivered by a [`NatsSubscriber`](crate::NatsSubscriber): from a core
/// subject or a JetStream consumer (see the crate docs for how each settles).
#[derive(Debug)]
pub struct NatsMessage {
    subject: Subject,
    reply: Option<Subject>,
    payload: Bytes,
    headers: Headers,
    kind: Kind,
}

impl NatsMessage {
    pub(crate) fn core(message: async_nats::Message) -> Self {
        Self {
            headers: message
                .headers
                .as_ref()
                .map(headers_from_nats)
                .unwrap_or_default(),
            subject: message.subject,
            reply: message.reply,
            payload: message.payload,
            kind: Kind::Core,
        }
    }

    pub(crate) fn jetstream(
        message: async_nats::jetstream::Message,
        settler: Arc<Settler>,
    ) -> Result<Self, String> {
        let delivered = message
            .info()
            .map_err(|error| format!("a JetStream message without metadata: {error}"))?
            .delivered;
        let message = message.message;
        let Some(ack_subject) = message.reply else {
            return Err("a JetStream message without an ack subject".to_owned());
        };
        Ok(Self {
            headers: message
                .headers
                .as_ref()
                .map(headers_from_nats)
                .unwrap_or_default(),
            subject: message.subject,
            reply: None,
            payload: message.payload,
            kind: Kind::JetStream {
                settler,
                ack_subject,
                delivered: u32::try_from(delivered.max(1)).unwrap_or(u32::MAX),
            },
        })
    }

    /// Whether it came from a JetStream consumer (and so is settled with the server).
    pub fn is_jetstream(&self) -> bool {
        matches!(self.kind, Kind::JetStream { .. })
    }

    /// The subject it was published to.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The body as shared [`Bytes`] (cheap to clone).
    pub fn payload_bytes(&self) -> &Bytes {
        &self.payload
    }

    async fn settle(self, body: Bytes) -> Result<(), AckError> {
        match self.kind {
            Kind::Core => Ok(()),
            Kind::JetStream {
                settler,
                ack_subject,
                ..
            } => settler.settle(ack_subject, body).await,
        }
    }
}

impl IncomingMessage for NatsMessage {
    /// JetStream delays a NAK natively. (Core messages report no redelivery count, so
    /// the runtime republishes a delayed copy for them instead of calling `nack_after`.)
    const NATIVE_DELAY: bool = true;

    fn payload(&self) -> &[u8] {
        &self.payload
    }

    fn headers(&self) -> &Headers {
        &self.headers
    }

    /// JetStream: `+ACK`, confirmed by the server. Core: nothing to do.
    async fn ack(self) -> Result<(), AckError> {
        self.settle(Bytes::from_static(b"+ACK")).await
    }

    /// JetStream: `-NAK` (redeliver now) or `+TERM` (never again), confirmed by the
    /// server. Core: nothing to do; core NATS does not redeliver.
    async fn nack(self, requeue: bool) -> Result<(), AckError> {
        let body = if requeue { &b"-NAK"[..] } else { &b"+TERM"[..] };
        self.settle(Bytes::from_static(body)).await
    }

    /// JetStream: `-NAK` with a delay, confirmed by the server. Core: nothing to do.
    async fn nack_after(self, delay: Duration) -> Result<(), AckError> {
        let body = format!("-NAK {{\"delay\":{}}}", delay.as_nanos());
        self.settle(Bytes::from(body)).await
    }

    fn name(&self) -> Option<&str> {
        Some(&self.subject)
    }

    fn reply_to(&self) -> Option<&str> {
        self.reply.as_deref()
    }

    /// JetStream: deliveries before this one, from the message metadata. Core: `None`.
    fn redelivery_count(&self) -> Option<u32> {
        match &self.kind {
            Kind::Core => None,
            Kind::JetStream { delivered, .. } => Some(delivered - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_headers_become_headers_with_every_value() {
        let mut map = HeaderMap::new();
        map.append("x-tag", "a");
        map.append("x-tag", "b");
        map.insert("x-id", "7");
        let headers = headers_from_nats(&map);
        assert_eq!(headers.get_all("x-tag").collect::<Vec<_>>(), [b"a", b"b"]);
        assert_eq!(headers.get_str("x-id"), Some("7"));
        assert_eq!(headers.len(), 3);
    }

    #[test]
    fn a_core_message_reports_no_redelivery_count_and_its_reply_subject() {
        let message = NatsMessage::core(async_nats::Message {
            subject: "orders.eu".into(),
            reply: Some("_INBOX.1".into()),
            payload: Bytes::from_static(b"x"),
            headers: None,
            status: None,
            description: None,
            length: 1,
        });
        assert_eq!(message.redelivery_count(), None);
        assert_eq!(message.reply_to(), Some("_INBOX.1"));
        assert_eq!(IncomingMessage::name(&message), Some("orders.eu"));
        assert!(!message.is_jetstream());
    }
}
