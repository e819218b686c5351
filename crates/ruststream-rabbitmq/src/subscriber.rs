//! [`RabbitSubscriber`]: the stream of a queue's deliveries, and its batches.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use std::pin::Pin;

use futures::future::Either;
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

/// Where the deliveries come from.
// Built once per subscription and never moved per message: the size does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Source {
    /// A consumer on a channel of its own (kept open for it; closed on drop).
    Live {
        consumer: Consumer,
        _channel: Channel,
    },
    /// The in-process test client.
    #[cfg(feature = "testing")]
    Local(ruststream::testing::TestSubscriber),
}

impl Source {
    fn consumer(&mut self) -> Option<&mut Consumer> {
        match self {
            Self::Live { consumer, .. } => Some(consumer),
            #[cfg(feature = "testing")]
            Self::Local(_) => None,
        }
    }
}

/// The stream type of the in-process mode (never built without the `testing` feature).
type Boxed<'a, T> = Pin<Box<dyn Stream<Item = Result<T, RabbitError>> + Send + 'a>>;

/// A consumer on a queue, with manual acks, on a channel of its own.
///
/// Dropping it closes the channel: every message it delivered and nobody settled goes
/// back to the queue. The stream ends (`None`) after the broker's `shutdown`; if the
/// server cancels the consumer or the connection drops, it yields
/// [`RabbitError::Cancelled`] once, and the runtime subscribes again.
pub struct RabbitSubscriber {
    source: Source,
    origin: Arc<Origin>,
    watch: ShutdownWatch,
    batcher: Batcher<RabbitMessage, RabbitError>,
    ended: bool,
}

impl RabbitSubscriber {
    pub(crate) fn new(source: Source, origin: Arc<Origin>, watch: ShutdownWatch) -> Self {
        Self {
            source,
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
        let Self {
            source,
            origin,
            watch,
            batcher,
            ended,
        } = self;
        let stream: Either<_, Boxed<'_, RabbitMessage>> = match source {
            Source::Live { consumer, .. } => Either::Left(futures::stream::poll_fn(move |cx| {
                batcher.poll_next(cx, |cx| poll_delivery(consumer, origin, watch, ended, cx))
            })),
            #[cfg(feature = "testing")]
            Source::Local(subscriber) => {
                Either::Right(Box::pin(subscriber.stream().map(|message| match message {
                    Ok(message) => Ok(RabbitMessage::local(message, origin)),
                    Err(never) => match never {},
                })))
            }
        };
        stream
    }

    fn capabilities(&self) -> Capabilities {
        match &self.source {
            #[cfg(feature = "testing")]
            Source::Local(subscriber) => subscriber.capabilities(),
            Source::Live { .. } if self.origin.quorum => QUORUM,
            Source::Live { .. } => CLASSIC,
        }
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
        #[cfg(feature = "testing")]
        if let Self {
            source: Source::Local(subscriber),
            origin,
            ..
        } = self
        {
            let batches: Boxed<'_, Vec<RabbitMessage>> = Box::pin(
                subscriber
                    .batches(max_messages, max_wait)
                    .map(move |batch| match batch {
                        Ok(batch) => Ok(batch
                            .into_iter()
                            .map(|message| RabbitMessage::local(message, origin))
                            .collect()),
                        Err(never) => match never {},
                    }),
            );
            return Either::Right(batches);
        }
        let batches = futures::stream::unfold(self, move |subscriber| async move {
            let Self {
                source,
                origin,
                watch,
                batcher,
                ended,
            } = &mut *subscriber;
            let consumer = source.consumer()?;
            let batch = batcher
                .next_batch(max_messages, max_wait, |cx| {
                    poll_delivery(consumer, origin, watch, ended, cx)
                })
                .await?;
            Some((batch, subscriber))
        });
        let batches: Either<_, Boxed<'_, Vec<RabbitMessage>>> = Either::Left(batches);
        batches
    }
}
