//! [`MemorySubscriber`]: the stream of one memory subscription.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use futures::stream::unfold;
use tokio_util::sync::ReusableBoxFuture;

use super::hub::{RouteKey, SubscriberSlot};
use super::message::{MemoryMessage, Redelivery};
use super::queue::Delivery;
use crate::{BatchSubscriber, Capabilities, Reply, Subscriber};

/// An open memory subscription. Dropping it leaves the subscription (a group keeps its
/// queue for the members that remain or come back).
pub struct MemorySubscriber {
    slot: Arc<SubscriberSlot>,
    /// Deliveries taken from the queue ahead of time, the next one last (fan-out
    /// subscriptions only: a group shares its queue, and taking ahead would starve the
    /// other members).
    buffer: Vec<Delivery>,
    /// Whether to take every ready delivery at once (see `DeliveryQueue::take_ready`).
    ahead: bool,
    /// The wait for a delivery that was not ready, kept between polls (and between
    /// streams, so a dropped stream loses nothing); its allocation is reused.
    wait: ReusableBoxFuture<'static, Option<Delivery>>,
    waiting: bool,
}

impl std::fmt::Debug for MemorySubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemorySubscriber")
            .field("slot", &self.slot)
            .field("waiting", &self.waiting)
            .finish_non_exhaustive()
    }
}

/// Waits for the slot's next delivery; one future type, so its box is reused.
async fn wait_for_delivery(slot: Arc<SubscriberSlot>) -> Option<Delivery> {
    slot.queue.pop(&slot.stop).await
}

impl MemorySubscriber {
    pub(crate) fn new(slot: Arc<SubscriberSlot>) -> Self {
        let wait = ReusableBoxFuture::new(wait_for_delivery(Arc::clone(&slot)));
        let ahead = matches!(slot.key, RouteKey::FanOut(_));
        Self {
            buffer: Vec::new(),
            ahead,
            slot,
            wait,
            waiting: false,
        }
    }

    #[inline]
    fn message(&self, delivery: Delivery) -> MemoryMessage {
        MemoryMessage::new(delivery)
    }

    /// A ready delivery is returned at once, without a future; otherwise the wait is
    /// polled (and kept for the next poll).
    #[inline(always)]
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<MemoryMessage>> {
        if !self.waiting {
            if let Some(delivery) = self.take_buffered() {
                return Poll::Ready(delivery.map(|delivery| self.message(delivery)));
            }
            let queue = &self.slot.queue;
            match queue.take_ready(&self.slot.stop, &mut self.buffer, self.ahead) {
                Err(()) => return Poll::Ready(None),
                Ok(Some(delivery)) => return Poll::Ready(Some(self.message(delivery))),
                Ok(None) => {
                    self.wait.set(wait_for_delivery(Arc::clone(&self.slot)));
                    self.waiting = true;
                }
            }
        }
        let delivery = std::task::ready!(self.wait.poll(cx));
        self.waiting = false;
        Poll::Ready(delivery.map(|delivery| self.message(delivery)))
    }

    /// A delivery taken ahead, if any: `Some(None)` once the subscription is stopped.
    #[inline]
    fn take_buffered(&mut self) -> Option<Option<Delivery>> {
        if self.buffer.is_empty() {
            return None;
        }
        if self.slot.stop.load(Ordering::Acquire) {
            return Some(None);
        }
        let delivery = self.buffer.pop()?;
        self.slot.queue.handed_out();
        Some(Some(delivery))
    }

    /// The next message, or `None` once the subscription is closed.
    pub(crate) async fn next_message(&mut self) -> Option<MemoryMessage> {
        let delivery = match self.take_buffered() {
            Some(buffered) => buffered?,
            None => self.slot.queue.pop(&self.slot.stop).await?,
        };
        Some(self.message(delivery))
    }

    fn try_next_message(&mut self) -> Option<MemoryMessage> {
        let delivery = match self.take_buffered() {
            Some(buffered) => buffered?,
            None => self.slot.queue.try_pop()?,
        };
        Some(self.message(delivery))
    }

    async fn next_batch(
        &mut self,
        max_messages: usize,
        max_wait: Duration,
    ) -> Option<Vec<MemoryMessage>> {
        let first = self.next_message().await?;
        let max_messages = max_messages.max(1);
        let mut batch = Vec::with_capacity(max_messages.min(1024));
        batch.push(first);
        let deadline = tokio::time::Instant::now() + max_wait;
        while batch.len() < max_messages {
            if let Some(message) = self.try_next_message() {
                batch.push(message);
                continue;
            }
            match tokio::time::timeout_at(deadline, self.next_message()).await {
                Ok(Some(message)) => batch.push(message),
                Ok(None) | Err(_) => break,
            }
        }
        Some(batch)
    }
}

impl Drop for MemorySubscriber {
    fn drop(&mut self) {
        // Only fan-out subscriptions take ahead, and their queue closes with them.
        self.slot.queue.forget_prefetched(self.buffer.len());
        self.buffer.clear();
        self.slot.release();
    }
}

impl Subscriber for MemorySubscriber {
    type Message = MemoryMessage;
    /// The stream never fails: a subscription that is closed (unsubscribed, or the
    /// broker shut down) ends it. A small item type also keeps each delivery cheap to move.
    type Error = Infallible;

    // Deliberately stronger than the trait: the memory stream is `Unpin`.
    #[allow(refining_impl_trait)]
    fn stream(
        &mut self,
    ) -> impl Stream<Item = Result<MemoryMessage, Infallible>> + Send + Unpin + '_ {
        MemoryStream { subscriber: self }
    }

    /// Everything: requeues and delays are held by this process (as durable as the
    /// broker itself), deliveries are counted, headers and keys kept. A test client's
    /// queue does not redeliver, and says so.
    fn capabilities(&self) -> Capabilities {
        let redelivers = self.slot.queue.redelivery == Redelivery::Enabled;
        Capabilities::DEFAULT
            .with_requeue(redelivers)
            .with_delayed_requeue(redelivers)
            .with_redelivery_count(redelivers)
            .with_partition_key(true)
    }
}

impl BatchSubscriber for MemorySubscriber {
    fn batches(
        &mut self,
        max_messages: usize,
        max_wait: Duration,
    ) -> impl Stream<Item = Result<Vec<MemoryMessage>, Infallible>> + Send + '_ {
        unfold(self, move |subscriber| async move {
            let batch = subscriber.next_batch(max_messages, max_wait).await?;
            Some((Ok(batch), subscriber))
        })
    }
}

impl MemoryMessage {
    /// Settles the message and keeps its body and headers as a [`Reply`].
    pub(crate) fn into_reply(self) -> Reply {
        let reply = Reply {
            payload: bytes::Bytes::copy_from_slice(crate::IncomingMessage::payload(&self)),
            headers: crate::IncomingMessage::headers(&self).clone(),
        };
        drop(futures::FutureExt::now_or_never(
            crate::IncomingMessage::ack(self),
        ));
        reply
    }
}

/// The stream of a [`MemorySubscriber`]: `Unpin`, so `stream().next()` needs no pinning.
struct MemoryStream<'a> {
    subscriber: &'a mut MemorySubscriber,
}

impl Stream for MemoryStream<'_> {
    type Item = Result<MemoryMessage, Infallible>;

    #[inline(always)]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut()
            .subscriber
            .poll_message(cx)
            .map(|message| message.map(Ok))
    }
}
