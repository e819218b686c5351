//! [`NatsSubscriber`]: the stream of a core subscription or a JetStream pull consumer.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use futures::{Stream, StreamExt};
use ruststream::kit::{Batcher, ShutdownWatch};
use ruststream::{BatchSubscriber, Capabilities, HeaderSupport, Subscriber};

use crate::broker::NatsBroker;
use crate::error::NatsError;
use crate::message::{NatsMessage, Settler};

enum Source {
    Core(async_nats::Subscriber),
    JetStream {
        messages: Box<pull::Stream>,
        settler: Arc<Settler>,
    },
    /// A subscription of an in-process broker ([`NatsBroker::in_process`]).
    #[cfg(feature = "testing")]
    InProcess(ruststream::testing::TestSubscriber),
}

/// An open NATS subscription, read as a [`Stream`] of [`NatsMessage`]s.
///
/// The stream ends once the broker is shut down. A JetStream subscriber pulls messages in
/// batches ([`NatsSource::batch`](crate::NatsSource::batch)) and keeps pulling as they are
/// consumed; messages it holds when dropped are redelivered by the server after the
/// consumer's ack wait. Dropping a core subscriber unsubscribes.
pub struct NatsSubscriber {
    incoming: Incoming,
    /// The batch being gathered, kept here so a dropped `batches` stream loses nothing.
    batcher: Batcher<NatsMessage, NatsError>,
}

/// The subscription itself and the broker's shutdown signal.
struct Incoming {
    subject: String,
    source: Source,
    /// Set at shutdown: checked per message, polled only while the source has nothing
    /// ready.
    closed: ShutdownWatch,
    ended: bool,
}

impl std::fmt::Debug for NatsSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSubscriber")
            .field("subject", &self.incoming.subject)
            .field(
                "kind",
                &match self.incoming.source {
                    Source::Core(_) => "core",
                    Source::JetStream { .. } => "jetstream",
                    #[cfg(feature = "testing")]
                    Source::InProcess(_) => "in-process",
                },
            )
            .field("ended", &self.incoming.ended)
            .finish()
    }
}

impl NatsSubscriber {
    fn with_source(broker: &NatsBroker, subject: String, source: Source) -> Self {
        Self {
            incoming: Incoming {
                subject,
                source,
                closed: broker.inner.closed.watch(),
                ended: false,
            },
            batcher: Batcher::new(),
        }
    }

    pub(crate) fn core(
        broker: &NatsBroker,
        subject: String,
        subscription: async_nats::Subscriber,
    ) -> Self {
        Self::with_source(broker, subject, Source::Core(subscription))
    }

    pub(crate) fn jetstream(
        broker: &NatsBroker,
        client: async_nats::Client,
        subject: String,
        messages: pull::Stream,
    ) -> Self {
        let settler = Arc::new(Settler {
            client,
            closed: broker.inner.closed.clone(),
            ack_timeout: broker.config().ack_timeout,
            confirm: broker.config().confirmed_acks,
        });
        Self::with_source(
            broker,
            subject,
            Source::JetStream {
                messages: Box::new(messages),
                settler,
            },
        )
    }

    #[cfg(feature = "testing")]
    pub(crate) fn in_process(
        broker: &NatsBroker,
        subject: String,
        subscription: ruststream::testing::TestSubscriber,
    ) -> Self {
        Self::with_source(broker, subject, Source::InProcess(subscription))
    }

    /// The subject (pattern) subscribed to.
    pub fn subject(&self) -> &str {
        &self.incoming.subject
    }
}

impl Incoming {
    /// The next message from the subscription itself. Inlined into the stream's poll:
    /// one call per message, not two.
    #[inline]
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<NatsMessage, NatsError>>> {
        if self.ended || self.closed.is_triggered() {
            self.ended = true;
            return Poll::Ready(None);
        }
        // A message is returned straight from its arm: no intermediate `Poll` to move.
        let ended = match &mut self.source {
            Source::Core(subscription) => match subscription.poll_next_unpin(cx) {
                Poll::Ready(Some(message)) => {
                    return Poll::Ready(Some(Ok(NatsMessage::core(message))));
                }
                Poll::Ready(None) => true,
                Poll::Pending => false,
            },
            Source::JetStream { messages, settler } => match messages.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(message))) => {
                    return Poll::Ready(Some(
                        NatsMessage::jetstream(message, Arc::clone(settler)).map_err(|reason| {
                            NatsError::Receive {
                                subject: self.subject.clone(),
                                reason,
                            }
                        }),
                    ));
                }
                Poll::Ready(Some(Err(error))) => {
                    return Poll::Ready(Some(Err(NatsError::Receive {
                        subject: self.subject.clone(),
                        reason: error.to_string(),
                    })));
                }
                Poll::Ready(None) => true,
                Poll::Pending => false,
            },
            #[cfg(feature = "testing")]
            Source::InProcess(subscription) => {
                // The test subscriber keeps its state between streams, so a stream made
                // for one poll loses nothing.
                let stream = std::pin::pin!(Subscriber::stream(subscription));
                match stream.poll_next(cx) {
                    Poll::Ready(Some(Ok(message))) => {
                        return Poll::Ready(Some(Ok(NatsMessage::in_process(message))));
                    }
                    Poll::Ready(Some(Err(never))) => match never {},
                    Poll::Ready(None) => true,
                    Poll::Pending => false,
                }
            }
        };
        if ended {
            self.ended = true;
            return Poll::Ready(None);
        }
        match self.closed.poll_triggered(cx) {
            Poll::Ready(()) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Subscriber for NatsSubscriber {
    type Message = NatsMessage;
    type Error = NatsError;

    fn stream(&mut self) -> impl Stream<Item = Result<NatsMessage, NatsError>> + Send + '_ {
        futures::stream::poll_fn(move |cx| {
            let Self { incoming, batcher } = self;
            batcher.poll_next(cx, |cx| incoming.poll_next(cx))
        })
    }

    /// JetStream: requeue, delayed requeue (`-NAK` with a delay, held by the server) and
    /// the delivery count. Core subjects: at most once, no redelivery. Headers are text
    /// on both. In process: what the test client does (no redelivery).
    fn capabilities(&self) -> Capabilities {
        match &self.incoming.source {
            Source::JetStream { .. } => Capabilities::DEFAULT
                .with_delayed_requeue(true)
                .with_redelivery_count(true)
                .with_headers(HeaderSupport::Text),
            Source::Core(_) => Capabilities::NONE.with_headers(HeaderSupport::Text),
            #[cfg(feature = "testing")]
            Source::InProcess(subscriber) => {
                subscriber.capabilities().with_headers(HeaderSupport::Text)
            }
        }
    }
}

impl BatchSubscriber for NatsSubscriber {
    /// Batches of at most `max_messages`: the first message is awaited, then more are
    /// taken until the batch is full or `max_wait` has passed. Each message settles on
    /// its own.
    fn batches(
        &mut self,
        max_messages: usize,
        max_wait: Duration,
    ) -> impl Stream<Item = Result<Vec<NatsMessage>, NatsError>> + Send + '_ {
        futures::stream::unfold(self, move |subscriber| async move {
            let Self { incoming, batcher } = &mut *subscriber;
            let batch = batcher
                .next_batch(max_messages, max_wait, |cx| incoming.poll_next(cx))
                .await?;
            Some((batch, subscriber))
        })
    }
}
