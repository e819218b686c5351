//! [`NatsMessage`]: a delivered message, its headers and its settlement.
//!
//! | | core subject | JetStream consumer |
//! |---|---|---|
//! | `ack` | nothing to do (core NATS has no acks): `Ok` | `+ACK`, queued on the connection (or confirmed by the server, with `Config::confirmed_acks`) |
//! | `nack(true)` | `AckError::Unsupported`: the message is not redelivered | `-NAK`: redelivered at once |
//! | `nack(false)` | nothing to do | `+TERM`: never redelivered |
//! | `nack_after(d)` | `AckError::Unsupported` | `-NAK {"delay": d}`: redelivered after `d` |
//! | `redelivery_count` | `None`: the server does not redeliver | `delivered - 1` from the message metadata |
//! | `reply_to` | the request's reply subject | `None` (the reply subject is the ack subject) |
//!
//! The subscriber's `capabilities()` says the same: a core subscription cannot requeue,
//! so the runtime reports a retry there as unsupported.

use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, HeaderMap, Subject};
use bytes::Bytes;
use futures::future::Either;
use ruststream::kit::Shutdown;
use ruststream::{AckError, Headers, IncomingMessage};

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
    pub(crate) closed: Shutdown,
    pub(crate) ack_timeout: Duration,
    /// Whether each settlement waits for the server's confirmation
    /// ([`Config::confirmed_acks`](crate::Config::confirmed_acks)).
    pub(crate) confirm: bool,
}

impl Settler {
    /// Sends `body` to the ack subject: queued on the connection, as async-nats'
    /// `Message::ack` does, or, with confirmed acks, as a request the server answers.
    async fn settle(&self, ack_subject: Subject, body: Bytes) -> Result<(), AckError> {
        if self.closed.is_triggered() {
            return Err(AckError::Closed);
        }
        if !self.confirm {
            // Queued, not awaited: the next message is handled while the ack is on its
            // way, and shutdown flushes what is still queued. An ack lost on the way
            // means a redelivery after the ack wait, never a lost message.
            return self
                .client
                .publish(ack_subject, body)
                .await
                .map_err(|error| {
                    if self.closed.is_triggered() {
                        AckError::Closed
                    } else {
                        AckError::Transport(Box::new(error))
                    }
                });
        }
        match tokio::time::timeout(self.ack_timeout, self.client.request(ack_subject, body)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => match error.kind() {
                async_nats::RequestErrorKind::TimedOut => Err(AckError::Timeout(self.ack_timeout)),
                async_nats::RequestErrorKind::NoResponders => Err(AckError::Rejected(
                    "the consumer is gone (no responders on its ack subject)".to_owned(),
                )),
                _ if self.closed.is_triggered() => Err(AckError::Closed),
                _ => Err(AckError::Transport(Box::new(error))),
            },
            Err(_) => Err(AckError::Timeout(self.ack_timeout)),
        }
    }
}

/// What a JetStream message needs for settling.
#[derive(Debug)]
struct JetStreamAck {
    settler: Arc<Settler>,
    ack_subject: Subject,
    delivered: u32,
}

/// Whom a message that is not a core message settles with. Boxed, so a core message (the
/// hot path) stays small enough to move without a `memcpy` call.
#[derive(Debug)]
enum Settle {
    JetStream(JetStreamAck),
    /// The in-process broker's message ([`NatsBroker::in_process`](crate::NatsBroker)),
    /// which settles with it.
    #[cfg(feature = "testing")]
    InProcess(ruststream::testing::TestMessage),
}

/// A message delivered by a [`NatsSubscriber`](crate::NatsSubscriber): from a core
/// subject or a JetStream consumer (see the crate docs for how each settles).
#[derive(Debug)]
pub struct NatsMessage {
    subject: Subject,
    reply: Option<Subject>,
    payload: Bytes,
    headers: Headers,
    /// `None` for a core message: settling it has nothing to do.
    settle: Option<Box<Settle>>,
}

impl NatsMessage {
    /// Inlined: built in place, not from a copy of the client's (larger) message.
    #[inline]
    pub(crate) fn core(message: async_nats::Message) -> Self {
        let async_nats::Message {
            subject,
            reply,
            payload,
            headers,
            ..
        } = message;
        Self {
            headers: headers.as_ref().map(headers_from_nats).unwrap_or_default(),
            subject,
            reply,
            payload,
            settle: None,
        }
    }

    /// A message of the in-process broker, settled through it.
    #[cfg(feature = "testing")]
    pub(crate) fn in_process(message: ruststream::testing::TestMessage) -> Self {
        Self {
            subject: Subject::from(message.name().unwrap_or_default()),
            reply: message.reply_to().map(Subject::from),
            payload: Bytes::copy_from_slice(message.payload()),
            headers: message.headers().clone(),
            settle: Some(Box::new(Settle::InProcess(message))),
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
            settle: Some(Box::new(Settle::JetStream(JetStreamAck {
                settler,
                ack_subject,
                delivered: u32::try_from(delivered.max(1)).unwrap_or(u32::MAX),
            }))),
        })
    }

    /// Whether it came from a JetStream consumer (and so is settled with the server).
    pub fn is_jetstream(&self) -> bool {
        matches!(self.settle.as_deref(), Some(Settle::JetStream(_)))
    }

    /// The subject it was published to.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The body as shared [`Bytes`] (cheap to clone).
    pub fn payload_bytes(&self) -> &Bytes {
        &self.payload
    }

    /// Drops the message, keeping what settling needs (`None` for a core message). Out
    /// of line, so the drop code is not repeated where each settlement is awaited.
    #[inline(never)]
    fn into_settle(self) -> Option<Box<Settle>> {
        self.settle
    }

    /// Not an `async fn` of `self`: the message is dropped first and the future keeps
    /// only the settling part (a pointer), so a core settlement costs next to nothing.
    /// Always inlined: the future (sized for the JetStream request) is then built where
    /// it is awaited, not returned and copied. `with` only runs for a message that
    /// settles with someone.
    #[inline(always)]
    fn settle<F>(
        self,
        with: impl FnOnce(Settle) -> F + Send,
    ) -> impl Future<Output = Result<(), AckError>> + Send
    where
        F: Future<Output = Result<(), AckError>> + Send,
    {
        let settle = self.into_settle();
        async move {
            match settle {
                None => Ok(()),
                Some(settle) => with(*settle).await,
            }
        }
    }
}

/// Why a core message cannot be requeued.
const CORE_CANNOT_REQUEUE: AckError = AckError::Unsupported(
    "redeliver a core NATS message: core subjects are at most once; subscribe through JetStream (`NatsSource::new(..).stream(..)`) for redelivery",
);

impl Settle {
    /// JetStream: `+ACK`.
    async fn ack(self) -> Result<(), AckError> {
        match self {
            Self::JetStream(ack) => {
                let body = Bytes::from_static(b"+ACK");
                ack.settler.settle(ack.ack_subject, body).await
            }
            #[cfg(feature = "testing")]
            Self::InProcess(message) => message.ack().await,
        }
    }

    /// JetStream: `-NAK` (redeliver now) or `+TERM` (never again).
    async fn nack(self, requeue: bool) -> Result<(), AckError> {
        match self {
            Self::JetStream(ack) => {
                let body = if requeue { &b"-NAK"[..] } else { &b"+TERM"[..] };
                let body = Bytes::from_static(body);
                ack.settler.settle(ack.ack_subject, body).await
            }
            #[cfg(feature = "testing")]
            Self::InProcess(message) => message.nack(requeue).await,
        }
    }

    /// JetStream: `-NAK` with a delay.
    async fn nack_after(self, delay: Duration) -> Result<(), AckError> {
        match self {
            Self::JetStream(ack) => {
                let body = Bytes::from(format!("-NAK {{\"delay\":{}}}", delay.as_nanos()));
                ack.settler.settle(ack.ack_subject, body).await
            }
            #[cfg(feature = "testing")]
            Self::InProcess(message) => message.nack_after(delay).await,
        }
    }

    /// Deliveries before this one: JetStream's metadata; none in process.
    fn redelivery_count(&self) -> Option<u32> {
        match self {
            Self::JetStream(ack) => Some(ack.delivered - 1),
            #[cfg(feature = "testing")]
            Self::InProcess(_) => None,
        }
    }
}

impl IncomingMessage for NatsMessage {
    fn payload(&self) -> &[u8] {
        &self.payload
    }

    fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Core: at once, there is nothing to confirm. JetStream: gives the message back for
    /// [`ack`](IncomingMessage::ack), which waits for the server.
    #[inline]
    fn ack_now(self) -> Result<(), Self> {
        if self.settle.is_some() {
            return Err(self);
        }
        Ok(())
    }

    /// JetStream: `+ACK`, queued (or confirmed, with `Config::confirmed_acks`). Core:
    /// nothing to do.
    #[inline(always)]
    fn ack(self) -> impl Future<Output = Result<(), AckError>> + Send {
        self.settle(Settle::ack)
    }

    /// JetStream: `-NAK` (redeliver now) or `+TERM` (never again), sent as an ack is. Core: `nack(false)` has nothing to do; `nack(true)` answers
    /// [`AckError::Unsupported`], as core NATS does not redeliver.
    #[inline(always)]
    fn nack(self, requeue: bool) -> impl Future<Output = Result<(), AckError>> + Send {
        if requeue && self.settle.is_none() {
            return Either::Left(std::future::ready(Err(CORE_CANNOT_REQUEUE)));
        }
        Either::Right(self.settle(move |settle| settle.nack(requeue)))
    }

    /// JetStream: `-NAK` with a delay, sent as an ack is: the server holds the
    /// message for the delay. Core: [`AckError::Unsupported`].
    #[inline(always)]
    fn nack_after(self, delay: Duration) -> impl Future<Output = Result<(), AckError>> + Send {
        if self.settle.is_none() {
            return Either::Left(std::future::ready(Err(CORE_CANNOT_REQUEUE)));
        }
        Either::Right(self.settle(move |settle| settle.nack_after(delay)))
    }

    fn name(&self) -> Option<&str> {
        Some(&self.subject)
    }

    fn reply_to(&self) -> Option<&str> {
        self.reply.as_deref()
    }

    /// JetStream: deliveries before this one, from the message metadata. Core: `None`.
    fn redelivery_count(&self) -> Option<u32> {
        self.settle.as_ref()?.redelivery_count()
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

    fn core_message() -> NatsMessage {
        NatsMessage::core(async_nats::Message {
            subject: "orders.eu".into(),
            reply: Some("_INBOX.1".into()),
            payload: Bytes::from_static(b"x"),
            headers: None,
            status: None,
            description: None,
            length: 1,
        })
    }

    #[test]
    fn a_core_message_reports_no_redelivery_count_and_its_reply_subject() {
        let message = core_message();
        assert_eq!(message.redelivery_count(), None);
        assert_eq!(message.reply_to(), Some("_INBOX.1"));
        assert_eq!(IncomingMessage::name(&message), Some("orders.eu"));
        assert!(!message.is_jetstream());
    }

    /// Past 128 bytes the compiler moves a message with a `memcpy` call, and the runtime
    /// moves each message a few times on its way to settlement.
    #[test]
    fn a_message_stays_small_enough_to_move_without_memcpy() {
        assert!(std::mem::size_of::<NatsMessage>() <= 128);
    }

    #[tokio::test]
    async fn a_core_message_acks_locally_and_cannot_be_requeued() {
        assert!(core_message().ack_now().is_ok(), "a core ack is local");
        assert!(core_message().ack().await.is_ok());
        assert!(matches!(
            core_message().nack(true).await,
            Err(AckError::Unsupported(_))
        ));
        assert!(core_message().nack(false).await.is_ok());
        assert!(matches!(
            core_message().nack_after(Duration::from_secs(1)).await,
            Err(AckError::Unsupported(_))
        ));
    }
}
