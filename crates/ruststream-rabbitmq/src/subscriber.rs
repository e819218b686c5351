//! [`RabbitSubscriber`]: the stream of a queue's deliveries, and its batches.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use lapin::{Channel, Consumer};
use ruststream::kit::{Batcher, ShutdownWatch};
use ruststream::{BatchSubscriber, Capabilities, HeaderSupport, Subscriber};

use crate::error::RabbitError;
use crate::message::{Origin, RabbitMessage};

/// What a classic queue's messages can do: requeue, durable delayed requeue (the delay
/// queue), any header bytes.
const CLASSIC: Capabilities = Capabilities::DEFAULT
    .with_delayed_requeue(true)
    .with_headers(HeaderSupport::Binary);

/// A quorum queue's messages also count their deliveries.
const QUORUM: Capabilities = CLASSIC.with_redelivery_count(true);

/// A consumer on a queue, with manual acks, on a channel of its own.
///
/// Dropping it closes the channel: every message it delivered and nobody settled goes
/// back to the queue. The stream ends (`None`) after the broker's `shutdown`; if the
/// server cancels the consumer or the connection drops, it yields
/// [`RabbitError::Cancelled`] once, and the runtime subscribes again.
pub struct RabbitSubscriber {
    consumer: Consumer,
    /// Kept open for the consumer; closed on drop.
    _channel: Channel,
    origin: Arc<Origin>,
    watch: ShutdownWatch,
    batcher: Batcher<RabbitMessage, RabbitError>,
    ended: bool,
}

impl RabbitSubscriber {
    pub(crate) fn new(
        channel: Channel,
        consumer: Consumer,
        origin: Arc<Origin>,
        watch: ShutdownWatch,
    ) -> Self {
        Self {
            consumer,
            _channel: channel,
            origin,
            watch,
            batcher: Batcher::new(),
            ended: false,
        }
    }

    /// The queue consumed (the generated name of an unnamed queue).
    pub fn queue(&self) -> &str {
        &self.origin.queue
    }
}

impl std::fmt::Debug for RabbitSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitSubscriber")
            .field("queue", &self.origin.queue)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// The next delivery of the consumer, as the contract's stream item.
fn poll_delivery(
    consumer: &mut Consumer,
    origin: &Arc<Origin>,
    watch: &mut ShutdownWatch,
    ended: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<RabbitMessage, RabbitError>>> {
    if *ended || watch.is_triggered() {
        *ended = true;
        return Poll::Ready(None);
    }
    match consumer.poll_next_unpin(cx) {
        Poll::Ready(Some(Ok(delivery))) => {
            Poll::Ready(Some(Ok(RabbitMessage::new(delivery, origin))))
        }
        Poll::Ready(Some(Err(error))) => {
            *ended = true;
            if watch.is_triggered() {
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Err(RabbitError::Cancelled {
                queue: origin.queue.clone(),
                reason: origin.broker.redact(error),
            })))
        }
        Poll::Ready(None) => {
            *ended = true;
            if watch.is_triggered() {
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Err(RabbitError::Cancelled {
                queue: origin.queue.clone(),
                reason: "the server cancelled the consumer (the queue was deleted, or its node went down)".to_owned(),
            })))
        }
        Poll::Pending => {
            if watch.poll_triggered(cx).is_ready() {
                *ended = true;
                return Poll::Ready(None);
            }
            Poll::Pending
        }
    }
}

impl Subscriber for RabbitSubscriber {
    type Message = RabbitMessage;
    type Error = RabbitError;

    fn stream(&mut self) -> impl Stream<Item = Result<RabbitMessage, RabbitError>> + Send + '_ {
        futures::stream::poll_fn(move |cx| {
            let Self {
                consumer,
                origin,
                watch,
                batcher,
                ended,
                ..
            } = self;
            batcher.poll_next(cx, |cx| poll_delivery(consumer, origin, watch, ended, cx))
        })
    }

    fn capabilities(&self) -> Capabilities {
        if self.origin.quorum { QUORUM } else { CLASSIC }
    }
}

impl BatchSubscriber for RabbitSubscriber {
    /// Batches of the deliveries the prefetch lets in: keep the prefetch at least
    /// `max_messages`, or batches stay smaller.
    fn batches(
        &mut self,
        max_messages: usize,
        max_wait: Duration,
    ) -> impl Stream<Item = Result<Vec<RabbitMessage>, RabbitError>> + Send + '_ {
        futures::stream::unfold(self, move |subscriber| async move {
            let Self {
                consumer,
                origin,
                watch,
                batcher,
                ended,
                ..
            } = &mut *subscriber;
            let batch = batcher
                .next_batch(max_messages, max_wait, |cx| {
                    poll_delivery(consumer, origin, watch, ended, cx)
                })
                .await?;
            Some((batch, subscriber))
        })
    }
}
