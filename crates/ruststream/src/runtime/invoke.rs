//! [`Invoke`]: how a subscription reads its subscriber and calls its handler, one message
//! at a time (every [`Handler`]) or in batches ([`Batch`]). Everything after the call
//! (spans, observers, layers, failure policies, settlement) is the same for both.

use std::future::Future;

use futures::Stream;
use futures::future::Either;

use super::{Batch, BatchHandler, Handler, Message, Outcome, ReplyBuffer};
use crate::{BatchSubscriber, Subscriber};

/// What a subscription's handler is: a message [`Handler`] (every one is an `Invoke`), or
/// a [`BatchHandler`] with its batch size, [`Batch`]. Implemented by the runtime only.
pub trait Invoke<Sub: Subscriber>: sealed::Invoke<Sub> {}

impl<Sub: Subscriber, T: sealed::Invoke<Sub>> Invoke<Sub> for T {}

pub(crate) mod sealed {
    use super::*;

    /// Calls a handler on the views of one delivery's messages.
    pub trait Call: Send + Sync + 'static {
        /// The handler's outcome for `messages`, any reply encoded into `reply`.
        fn call<'a>(
            &'a self,
            messages: &'a [Message<'a>],
            reply: &'a mut ReplyBuffer,
        ) -> impl Future<Output = Outcome> + Send + 'a;
    }

    /// The methods of [`Invoke`](super::Invoke), out of users' reach.
    pub trait Invoke<Sub: Subscriber>: Call {
        /// What the subscriber yields for one call: a message, or a batch of them.
        type Delivery: Send;

        /// The subscriber's deliveries.
        fn deliveries<'s>(
            &'s self,
            subscriber: &'s mut Sub,
        ) -> impl Stream<Item = Result<Self::Delivery, Sub::Error>> + Send + 's;

        /// The messages of one delivery, in order.
        fn messages(delivery: &Self::Delivery) -> &[Sub::Message];

        /// The messages of one delivery, by value, in order, to settle each.
        fn into_messages(delivery: Self::Delivery) -> impl Iterator<Item = Sub::Message> + Send;
    }
}

impl<Sub: Subscriber, H: Handler> sealed::Invoke<Sub> for H {
    type Delivery = Sub::Message;

    fn deliveries<'s>(
        &'s self,
        subscriber: &'s mut Sub,
    ) -> impl Stream<Item = Result<Sub::Message, Sub::Error>> + Send + 's {
        subscriber.stream()
    }

    fn messages(delivery: &Sub::Message) -> &[Sub::Message] {
        std::slice::from_ref(delivery)
    }

    fn into_messages(delivery: Sub::Message) -> impl Iterator<Item = Sub::Message> + Send {
        std::iter::once(delivery)
    }
}

impl<H: Handler> sealed::Call for H {
    fn call<'a>(
        &'a self,
        messages: &'a [Message<'a>],
        reply: &'a mut ReplyBuffer,
    ) -> impl Future<Output = Outcome> + Send + 'a {
        match messages {
            [message] => Either::Left(Handler::call(self, *message, reply)),
            _ => Either::Right(std::future::ready(Outcome::failed(format!(
                "a message handler takes one message, not {}",
                messages.len()
            )))),
        }
    }
}

impl<Sub: BatchSubscriber, H: BatchHandler> sealed::Invoke<Sub> for Batch<H> {
    type Delivery = Vec<Sub::Message>;

    fn deliveries<'s>(
        &'s self,
        subscriber: &'s mut Sub,
    ) -> impl Stream<Item = Result<Vec<Sub::Message>, Sub::Error>> + Send + 's {
        subscriber.batches(self.max_messages, self.max_wait)
    }

    fn messages(delivery: &Vec<Sub::Message>) -> &[Sub::Message] {
        delivery
    }

    fn into_messages(delivery: Vec<Sub::Message>) -> impl Iterator<Item = Sub::Message> + Send {
        delivery.into_iter()
    }
}

impl<H: BatchHandler> sealed::Call for Batch<H> {
    fn call<'a>(
        &'a self,
        messages: &'a [Message<'a>],
        _reply: &'a mut ReplyBuffer,
    ) -> impl Future<Output = Outcome> + Send + 'a {
        let outcomes = self.handler.call(messages);
        async move { Outcome::each(outcomes.await) }
    }
}
