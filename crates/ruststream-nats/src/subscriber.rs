//! [`NatsSubscriber`]: the stream of a core subscription or a JetStream pull consumer.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use futures::{Stream, StreamExt};
use ruststream::{BatchSubscriber, Capabilities, HeaderSupport, Subscriber};
use tokio::time::Instant;
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::broker::{Inner, NatsBroker};
use crate::error::NatsError;
use crate::message::{NatsMessage, Settler};

enum Source {
    Core(async_nats::Subscriber),
    JetStream {
        messages: Box<pull::Stream>,
        settler: Arc<Settler>,
    },
}

/// An open NATS subscription, read as a [`Stream`] of [`NatsMessage`]s.
///
/// The stream ends once the broker is shut down. A JetStream subscriber pulls messages in
/// batches ([`NatsSource::batch`](crate::NatsSource::batch)) and keeps pulling as they are
/// consumed; messages it holds when dropped are redelivered by the server after the
/// consumer's ack wait. Dropping a core subscriber unsubscribes.
pub struct NatsSubscriber {
    subject: String,
    source: Source,
    broker: Arc<Inner>,
    /// Completes at shutdown; polled only while the source has nothing ready.
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The waker `closed` last registered: polling it again with the same one would only
    /// take its lock to find nothing changed, on every idle moment of a busy stream.
    closed_waker: Option<Waker>,
    ended: bool,
    /// Messages of a batch being gathered, kept here so a dropped `batches` stream loses
    /// nothing.
    partial: Vec<NatsMessage>,
    partial_deadline: Option<Instant>,
    failed: Option<NatsError>,
}

impl std::fmt::Debug for NatsSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSubscriber")
            .field("subject", &self.subject)
            .field(
                "kind",
                &match self.source {
                    Source::Core(_) => "core",
                    Source::JetStream { .. } => "jetstream",
                },
            )
            .field("ended", &self.ended)
            .finish()
    }
}

impl NatsSubscriber {
    fn with_source(broker: &NatsBroker, subject: String, source: Source) -> Self {
        let closed_token = broker.inner.closed.clone();
        let broker = Arc::clone(&broker.inner);
        Self {
            subject,
            source,
            closed: Box::pin(closed_token.cancelled_owned()),
            closed_waker: None,
            broker,
            ended: false,
            partial: Vec::new(),
            partial_deadline: None,
            failed: None,
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

    /// The subject (pattern) subscribed to.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<NatsMessage, NatsError>>> {
        if let Some(error) = self.failed.take() {
            return Poll::Ready(Some(Err(error)));
        }
        if !self.partial.is_empty() {
            return Poll::Ready(Some(Ok(self.partial.remove(0))));
        }
        self.poll_source(cx)
    }

    /// The next message from the subscription itself. Inlined into `poll_message`: one
    /// call per message, not two.
    #[inline]
    fn poll_source(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<NatsMessage, NatsError>>> {
        if self.ended || self.broker.shut_down.load(Ordering::Acquire) {
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
        };
        if ended {
            self.ended = true;
            return Poll::Ready(None);
        }
        if self
            .closed_waker
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            // Registered with this task already: shutdown wakes it, and the flag check
            // above ends the stream.
            return Poll::Pending;
        }
        match self.closed.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                self.closed_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// The next message, waiting at most until `deadline`.
    async fn next_until(
        &mut self,
        deadline: Instant,
    ) -> Result<Option<Result<NatsMessage, NatsError>>, tokio::time::error::Elapsed> {
        tokio::time::timeout_at(
            deadline,
            futures::future::poll_fn(|cx| self.poll_source(cx)),
        )
        .await
    }

    /// Gathers one batch into `partial` (kept across cancellation) and hands it out.
    async fn next_batch(
        &mut self,
        max: usize,
        max_wait: Duration,
    ) -> Option<Result<Vec<NatsMessage>, NatsError>> {
        let max = max.max(1);
        if self.partial.is_empty() {
            match futures::future::poll_fn(|cx| self.poll_message(cx)).await {
                None => return None,
                Some(Err(error)) => return Some(Err(error)),
                Some(Ok(first)) => {
                    self.partial.push(first);
                    self.partial_deadline = Some(Instant::now() + max_wait);
                }
            }
        }
        let deadline = *self
            .partial_deadline
            .get_or_insert_with(|| Instant::now() + max_wait);
        while self.partial.len() < max {
            // From the source only: `partial` is what is being filled.
            match self.next_until(deadline).await {
                Ok(Some(Ok(message))) => self.partial.push(message),
                Ok(Some(Err(error))) => {
                    self.failed = Some(error);
                    break;
                }
                Ok(None) | Err(_) => break,
            }
        }
        self.partial_deadline = None;
        Some(Ok(std::mem::take(&mut self.partial)))
    }
}

impl Subscriber for NatsSubscriber {
    type Message = NatsMessage;
    type Error = NatsError;

    fn stream(&mut self) -> impl Stream<Item = Result<NatsMessage, NatsError>> + Send + '_ {
        futures::stream::poll_fn(move |cx| self.poll_message(cx))
    }

    /// JetStream: requeue, delayed requeue (`-NAK` with a delay, held by the server) and
    /// the delivery count. Core subjects: at most once, no redelivery. Headers are text
    /// on both.
    fn capabilities(&self) -> Capabilities {
        match self.source {
            Source::JetStream { .. } => Capabilities::DEFAULT
                .with_delayed_requeue(true)
                .with_redelivery_count(true)
                .with_headers(HeaderSupport::Text),
            Source::Core(_) => Capabilities::NONE.with_headers(HeaderSupport::Text),
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
            let batch = subscriber.next_batch(max_messages, max_wait).await?;
            Some((batch, subscriber))
        })
    }
}
