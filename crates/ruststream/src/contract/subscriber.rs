//! The subscriber: a stream of incoming messages.

use futures::Stream;

use crate::contract::{Capabilities, IncomingMessage};

/// An open subscription, read as a [`Stream`].
///
/// Back-pressure comes from polling: a broker fetches or accepts more only as the stream
/// is polled. `stream` borrows `self` mutably, so whatever is buffered between polls lives
/// in the subscriber and dropping the stream future loses nothing (cancel safety).
///
/// The stream ends (`None`) when the subscription is closed on purpose (broker shutdown).
/// An `Err` item reports a transport failure; the runtime decides whether to resubscribe.
pub trait Subscriber: Send {
    /// The delivered message type.
    type Message: IncomingMessage;
    /// Errors the stream can yield.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The messages of this subscription.
    fn stream(&mut self) -> impl Stream<Item = Result<Self::Message, Self::Error>> + Send + '_;

    /// What this subscription's messages can do: requeue, delayed requeue, redelivery
    /// count, headers, partition key.
    ///
    /// Defaults to [`Capabilities::DEFAULT`], which is what the defaulted methods of
    /// [`IncomingMessage`] give. A broker that overrides `nack_after`,
    /// `redelivery_count` or `partition_key`, or cannot requeue, says so here: the
    /// runtime settles by it and the conformance harness checks exactly it.
    fn capabilities(&self) -> Capabilities {
        Capabilities::DEFAULT
    }
}

/// Conveniences for every [`Subscriber`].
pub trait SubscriberExt: Subscriber {
    /// Waits for the next message: `None` once the subscription has ended.
    ///
    /// Each call polls a fresh [`stream`](Subscriber::stream), which is cheap and loses
    /// nothing because the subscriber keeps its buffered state. For a long-running loop,
    /// pin one stream instead: `let mut messages = std::pin::pin!(sub.stream());`.
    fn next_message(
        &mut self,
    ) -> impl std::future::Future<Output = Option<Result<Self::Message, Self::Error>>> + Send
    where
        Self: Sized,
    {
        async move {
            let mut stream = std::pin::pin!(self.stream());
            futures::StreamExt::next(&mut stream).await
        }
    }
}

impl<S: Subscriber> SubscriberExt for S {}
