//! Capability traits: optional features a broker implements only where its client really
//! has them. None is part of the mandatory interface.
//!
//! | trait | for brokers that support |
//! |---|---|
//! | [`BatchSubscriber`] | receiving messages in batches |
//! | [`TransactionalPublisher`] | begin / commit / abort around publishes |
//! | [`RequestReply`] | native request-reply |
//! | [`Partitioned`] | a partition key on outgoing messages |
//! | [`DescribeServer`] | reporting a [`ServerSpec`] for AsyncAPI |
//!
//! What each subscription's messages can do (requeue, delay, redelivery count, headers,
//! partition key) is stated once, by [`Capabilities`].

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;

use crate::contract::{Headers, OutgoingMessage, Publisher, ServerSpec, Subscriber};

/// Receiving messages in batches. Each message of a batch is settled on its own.
pub trait BatchSubscriber: Subscriber {
    /// Batches of at most `max_messages`, each yielded as soon as it is full or `max_wait`
    /// has passed since its first message. A batch is never empty.
    fn batches(
        &mut self,
        max_messages: usize,
        max_wait: Duration,
    ) -> impl Stream<Item = Result<Vec<Self::Message>, Self::Error>> + Send + '_;
}

/// Publishing several messages atomically.
pub trait TransactionalPublisher: Publisher {
    /// An open transaction.
    type Transaction: Transaction<Error = Self::Error>;

    /// Starts a transaction.
    fn begin(&self) -> impl Future<Output = Result<Self::Transaction, Self::Error>> + Send;
}

/// An open transaction: its publishes become visible together on `commit`, or never.
///
/// `commit` and `abort` consume the transaction, so it cannot be finished twice. Dropping
/// it unfinished aborts it.
pub trait Transaction: Send {
    /// The error of the transactional publisher.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Adds a message to the transaction.
    fn publish(
        &mut self,
        msg: OutgoingMessage<'_>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Makes every publish of the transaction visible.
    fn commit(self) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Discards every publish of the transaction.
    fn abort(self) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Native request-reply: publish a request and wait for the first reply.
pub trait RequestReply: Publisher {
    /// Publishes `msg` with a reply destination chosen by the broker and waits up to
    /// `timeout` for the reply. A request that nobody answers in time is an error.
    fn request(
        &self,
        msg: OutgoingMessage<'_>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Reply, Self::Error>> + Send;
}

/// The answer to a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// The reply body.
    pub payload: Bytes,
    /// The reply headers.
    pub headers: Headers,
}

/// A publisher that honours [`OutgoingMessage::with_key`]: messages with the same key keep
/// their order, and [`IncomingMessage::partition_key`](crate::IncomingMessage::partition_key)
/// returns the key on delivery.
pub trait Partitioned: Publisher {}

/// Reports the server a broker talks to, for the AsyncAPI `servers` section.
///
/// The runtime asks for it through [`Broker::server`](crate::Broker::server), which a
/// broker with this capability overrides as `Some(self.describe_server())`: a broker
/// without it still mounts in an app, its AsyncAPI document just lists no server.
pub trait DescribeServer {
    /// The server description. Never contains credentials.
    fn describe_server(&self) -> ServerSpec;
}

/// What a subscription and its messages can do: the one statement the runtime and the
/// conformance harness read, returned by
/// [`Subscriber::capabilities`].
///
/// | flag | `true` means | the runtime, when it is `false` |
/// |---|---|---|
/// | `requeue` | `nack(true)` redelivers, and a message left unsettled comes back | a retry is a warning and a count, not a redelivery |
/// | `delayed_requeue` | `nack_after(d)` holds the message for `d` itself, durably | `nack_after` is the default immediate requeue |
/// | `redelivery_count` | [`redelivery_count`](crate::IncomingMessage::redelivery_count) is `Some` | `max_attempts` cannot be counted: `start` refuses it |
/// | `headers` | which header values survive a round trip ([`HeaderSupport`]) | headers are not carried |
/// | `partition_key` | [`partition_key`](crate::IncomingMessage::partition_key) returns the publish key | keyed lanes rotate every message |
///
/// Build one from [`Capabilities::DEFAULT`] (what a broker that overrides no defaulted
/// method of [`IncomingMessage`](crate::IncomingMessage) has) with the `with_*` methods:
///
/// ```
/// use ruststream::contract::{Capabilities, HeaderSupport};
///
/// const JETSTREAM: Capabilities = Capabilities::DEFAULT
///     .with_delayed_requeue(true)
///     .with_redelivery_count(true)
///     .with_headers(HeaderSupport::Text);
/// assert!(JETSTREAM.requeue);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Capabilities {
    /// `nack(true)` redelivers, and so does dropping a message unsettled.
    pub requeue: bool,
    /// `nack_after(delay)` is the broker's own delayed redelivery, which survives a crash
    /// of the service during the delay.
    pub delayed_requeue: bool,
    /// Messages say how often they were delivered before.
    pub redelivery_count: bool,
    /// Which header values are carried unchanged.
    pub headers: HeaderSupport,
    /// Messages carry the key they were published with.
    pub partition_key: bool,
}

impl Capabilities {
    /// What the contract's defaults give: `nack(true)` requeues, headers are carried
    /// byte for byte, `nack_after` is an immediate requeue, no redelivery count, no key.
    pub const DEFAULT: Self = Self {
        requeue: true,
        delayed_requeue: false,
        redelivery_count: false,
        headers: HeaderSupport::Binary,
        partition_key: false,
    };

    /// A delivery nothing can be asked of: no requeue, no delay, no count, no headers,
    /// no key (a fire-and-forget transport such as core NATS without headers).
    pub const NONE: Self = Self {
        requeue: false,
        delayed_requeue: false,
        redelivery_count: false,
        headers: HeaderSupport::None,
        partition_key: false,
    };

    /// Sets [`requeue`](Self::requeue).
    #[must_use]
    pub const fn with_requeue(mut self, yes: bool) -> Self {
        self.requeue = yes;
        self
    }

    /// Sets [`delayed_requeue`](Self::delayed_requeue).
    #[must_use]
    pub const fn with_delayed_requeue(mut self, yes: bool) -> Self {
        self.delayed_requeue = yes;
        self
    }

    /// Sets [`redelivery_count`](Self::redelivery_count).
    #[must_use]
    pub const fn with_redelivery_count(mut self, yes: bool) -> Self {
        self.redelivery_count = yes;
        self
    }

    /// Sets [`headers`](Self::headers).
    #[must_use]
    pub const fn with_headers(mut self, headers: HeaderSupport) -> Self {
        self.headers = headers;
        self
    }

    /// Sets [`partition_key`](Self::partition_key).
    #[must_use]
    pub const fn with_partition_key(mut self, yes: bool) -> Self {
        self.partition_key = yes;
        self
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Which header values a broker carries unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderSupport {
    /// No headers at all.
    None,
    /// Names made of ASCII letters, digits and `-`, and printable ASCII values (spaces
    /// included, no CR/LF).
    Text,
    /// Like `Text`, and any byte in a value (NUL, CR, LF, non-UTF-8).
    Binary,
}
