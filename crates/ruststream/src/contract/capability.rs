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
pub trait DescribeServer {
    /// The server description. Never contains credentials.
    fn describe_server(&self) -> ServerSpec;
}
