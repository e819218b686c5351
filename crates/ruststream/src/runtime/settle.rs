//! Settlement: what happens to a message once its handler has been called. One place
//! decides ack, retry, drop, dead letter and stop, for message and batch handlers alike.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::Either;
use tracing::Instrument as _;

use super::message::{ATTEMPT_HEADER, Scope, attempt_of};
use super::middleware::LayeredPublisher;
use super::observe::{Observers, PublishAttempt, Settlement, Subscription};
use super::outcome::Kind;
use super::stop::StopSignal;
use super::subscriber::SubscriberOptions;
use super::{FailurePolicy, Message, ReplyBuffer, RuntimeBroker, Settle, spans};
use crate::headers::{CONTENT_TYPE, CORRELATION_ID};
use crate::{AckError, BoxError, Headers, IncomingMessage, OutgoingMessage};

/// On a dead-lettered message: why it was dead-lettered.
pub const DEAD_LETTER_REASON_HEADER: &str = "x-ruststream-dead-letter-reason";
/// On a dead-lettered message: the handler that gave up on it.
pub const DEAD_LETTER_HANDLER_HEADER: &str = "x-ruststream-dead-letter-handler";
/// On a dead-lettered message: the name it was originally published to.
pub const ORIGINAL_NAME_HEADER: &str = "x-ruststream-original-name";

/// What settling a subscription's messages needs: its broker (for replies and dead
/// letters), options, observers, and the app's stop signal (for the `Stop` policy).
pub(crate) struct Settler<B> {
    pub(crate) broker: B,
    pub(crate) scope: Scope,
    pub(crate) options: SubscriberOptions,
    pub(crate) observers: Arc<Observers>,
    pub(crate) publisher: Option<Arc<LayeredPublisher>>,
    pub(crate) stop_app: StopSignal,
}

/// Per-worker buffers reused from one message to the next, so replying allocates
/// nothing in steady state.
pub(crate) struct Slot {
    pub(crate) reply: ReplyBuffer,
    headers: Headers,
}

impl Slot {
    pub(crate) fn new(format: super::Format) -> Self {
        Self {
            reply: ReplyBuffer::new(format),
            headers: Headers::new(),
        }
    }
}

impl<B: RuntimeBroker> Settler<B> {
    /// Settles `message` by what its handler call came to. An ack, by far the most
    /// common, keeps a small future of its own; the rest is boxed.
    pub(crate) fn settle<'a, M: IncomingMessage + 'a>(
        &'a self,
        message: M,
        kind: &'a Kind,
        slot: &'a mut Slot,
    ) -> impl Future<Output = ()> + Send + 'a {
        let Kind::Settle(Settle::Ack) = kind else {
            return Either::Right(Box::pin(self.settle_otherwise(message, kind, slot)));
        };
        self.observe(&message, Settlement::Acked);
        // Most brokers ack without waiting: then there is no future to run.
        match message.ack_now() {
            Ok(()) => Either::Left(Either::Left(std::future::ready(()))),
            Err(message) => Either::Left(Either::Right(self.ack_later(message))),
        }
    }

    async fn settle_otherwise<M: IncomingMessage>(&self, message: M, kind: &Kind, slot: &mut Slot) {
        match kind {
            Kind::Settle(Settle::Ack) => self.ack_as(message, Settlement::Acked).await,
            Kind::Settle(Settle::Retry) => {
                self.retry(message, None, "the handler asked for a retry")
                    .await;
            }
            Kind::Settle(Settle::RetryAfter(delay)) => {
                self.retry(message, Some(*delay), "the handler asked for a retry")
                    .await;
            }
            Kind::Settle(Settle::Drop) => self.drop_message(message).await,
            Kind::Reply => match self.publish_reply(&message, slot).await {
                Ok(()) => self.ack_as(message, Settlement::Acked).await,
                Err(error) => {
                    tracing::warn!(handler = %self.scope.handler, %error, "publishing the reply failed");
                    let policy = self.options.failures.on_error.clone();
                    let reason = format!("publishing the reply failed: {error}");
                    self.fail(message, &reason, policy).await;
                }
            },
            Kind::Failed(error) => {
                tracing::warn!(handler = %self.scope.handler, destination = %self.scope.destination, %error, "the handler failed");
                let policy = self.options.failures.on_error.clone();
                self.fail(message, &error.to_string(), policy).await;
            }
            Kind::Rejected(rejection) => {
                tracing::warn!(handler = %self.scope.handler, destination = %self.scope.destination, %rejection, "the message was rejected before the handler ran");
                let policy = self.options.failures.decode_policy();
                self.fail(message, &rejection.to_string(), policy).await;
            }
            Kind::Panicked(reason) => {
                tracing::error!(handler = %self.scope.handler, destination = %self.scope.destination, panic = %reason, "the handler panicked");
                let policy = self.options.failures.panic_policy();
                self.fail(message, &format!("the handler panicked: {reason}"), policy)
                    .await;
            }
            // A batch's outcomes are taken apart by the pipeline; one nested here is a
            // batch handler's mistake, failed like any other.
            Kind::Each(_) => {
                let policy = self.options.failures.on_error.clone();
                self.fail(message, "a batch outcome was given for one message", policy)
                    .await;
            }
        }
    }

    /// The failure policy for `kind`, when it is a failure.
    pub(crate) fn policy_for(&self, kind: &Kind) -> Option<FailurePolicy> {
        let failures = &self.options.failures;
        match kind {
            Kind::Failed(_) | Kind::Each(_) => Some(failures.on_error.clone()),
            Kind::Rejected(_) => Some(failures.decode_policy()),
            Kind::Panicked(_) => Some(failures.panic_policy()),
            Kind::Settle(_) | Kind::Reply => None,
        }
    }

    /// Leaves the message to the broker, unsettled (shutdown during an in-place retry).
    pub(crate) fn leave_unsettled<M: IncomingMessage>(&self, message: M) {
        self.observe(&message, Settlement::LeftUnsettled);
    }

    async fn fail<M: IncomingMessage>(&self, message: M, reason: &str, policy: FailurePolicy) {
        match policy {
            FailurePolicy::Drop => self.drop_message(message).await,
            FailurePolicy::Retry => self.retry(message, None, reason).await,
            FailurePolicy::Backoff(backoff) => {
                let attempt = attempt_of(message.redelivery_count());
                self.retry(message, Some(backoff.delay(attempt)), reason)
                    .await;
            }
            // Every call in place failed: as when `max_attempts` runs out.
            FailurePolicy::RetryInPlace { attempts, .. } => {
                self.give_up(message, reason, attempts).await;
            }
            FailurePolicy::DeadLetter => self.dead_letter(message, reason).await,
            FailurePolicy::Stop => {
                tracing::error!(handler = %self.scope.handler, %reason, "stopping the service, as the failure policy says; the message is left for redelivery");
                self.stop_app.cancel();
                self.leave_unsettled(message);
            }
        }
    }

    /// Hands the message back to the broker for another attempt, `delay` from now, or
    /// gives up on it once `max_attempts` is reached.
    async fn retry<M: IncomingMessage>(&self, message: M, delay: Option<Duration>, reason: &str) {
        let attempt = attempt_of(message.redelivery_count());
        if let Some(max) = self.options.failures.max_attempts
            && attempt >= max
        {
            return self.give_up(message, reason, attempt).await;
        }
        self.hand_back(message, delay, reason).await;
    }

    /// `nack_after(delay)`, or `nack(true)` without a delay. The broker holds the message
    /// meanwhile; no worker waits.
    async fn hand_back<M: IncomingMessage>(
        &self,
        message: M,
        delay: Option<Duration>,
        reason: &str,
    ) {
        let requeue = self.scope.capabilities.requeue;
        // Observed before settling: once settled, the message may already be redelivered
        // to another worker.
        if requeue {
            self.observe(&message, Settlement::Retried { delay });
        } else {
            tracing::warn!(handler = %self.scope.handler, destination = %self.scope.destination, %reason, "a retry was asked for, but this subscription's broker does not redeliver: the message will not come back");
            self.observe(&message, Settlement::RetryUnsupported { delay });
        }
        let settled = match delay {
            None => message.nack(true).await,
            Some(delay) => message.nack_after(delay).await,
        };
        match settled {
            Ok(()) => {}
            // Expected where the subscription says it cannot requeue (warned above).
            Err(AckError::Unsupported(_)) if !requeue => {}
            Err(AckError::Unsupported(what)) => {
                tracing::warn!(handler = %self.scope.handler, destination = %self.scope.destination, "the subscription states it can requeue, but its broker cannot {what}: the message will not come back");
            }
            Err(error) => {
                tracing::warn!(handler = %self.scope.handler, %error, "asking for redelivery failed; the broker will redeliver");
            }
        }
    }

    async fn give_up<M: IncomingMessage>(&self, message: M, reason: &str, attempt: u32) {
        if self.options.failures.dead_letter.is_some() {
            let reason = format!("gave up after {attempt} attempts: {reason}");
            return self.dead_letter(message, &reason).await;
        }
        tracing::error!(handler = %self.scope.handler, destination = %self.scope.destination, attempt, %reason, "giving up on the message: no attempts left and no dead-letter destination; dropping it");
        self.drop_message(message).await;
    }

    async fn dead_letter<M: IncomingMessage>(&self, message: M, reason: &str) {
        let Some(destination) = &self.options.failures.dead_letter else {
            tracing::error!(handler = %self.scope.handler, %reason, "the failure policy says dead-letter but no dead-letter destination is set (`dead_letter(..)`); dropping the message");
            return self.drop_message(message).await;
        };
        let mut headers: Headers = message
            .headers()
            .iter_bytes()
            .filter(|(n, _)| *n != ATTEMPT_HEADER)
            .map(|(n, v)| (n.to_owned(), v.clone()))
            .collect();
        headers.insert(DEAD_LETTER_REASON_HEADER, reason.to_owned());
        headers.insert(DEAD_LETTER_HANDLER_HEADER, self.scope.handler.clone());
        headers.insert(
            ORIGINAL_NAME_HEADER,
            message.name().unwrap_or(&self.scope.destination).to_owned(),
        );
        let attempt = attempt_of(message.redelivery_count());
        headers.insert(ATTEMPT_HEADER, attempt.to_string());
        let copy = OutgoingMessage::new(destination, message.payload()).with_headers(&headers);
        match self.publish(copy).await {
            Ok(()) => {
                tracing::warn!(handler = %self.scope.handler, %destination, %reason, "dead-lettered the message");
                self.ack_as(message, Settlement::DeadLettered).await;
            }
            Err(error) => {
                tracing::error!(handler = %self.scope.handler, %destination, %error, "dead-lettering failed; leaving the message to the broker");
                self.hand_back(message, None, "publishing it failed").await;
            }
        }
    }

    async fn publish_reply<M: IncomingMessage>(
        &self,
        message: &M,
        slot: &mut Slot,
    ) -> Result<(), BoxError> {
        let reply_to = message.reply_to();
        if reply_to.is_none() && self.options.publish_to.is_empty() {
            tracing::debug!(handler = %self.scope.handler, "the handler returned a reply but there is no reply-to and no publish_to destination");
            return Ok(());
        }
        slot.headers.clear();
        slot.headers
            .insert(CONTENT_TYPE, self.scope.format.content_type());
        // The reply continues the delivery's trace.
        #[cfg(feature = "otel")]
        crate::otel::inject(&tracing::Span::current(), &mut slot.headers);
        if let Some(correlation) = message.headers().get(CORRELATION_ID) {
            slot.headers
                .insert(CORRELATION_ID, bytes::Bytes::copy_from_slice(correlation));
        }
        for destination in reply_to
            .into_iter()
            .chain(self.options.publish_to.iter().map(String::as_str))
        {
            let reply =
                OutgoingMessage::new(destination, slot.reply.body()).with_headers(&slot.headers);
            self.publish(reply).await?;
        }
        Ok(())
    }

    /// Publishes a reply or dead letter, telling the observers.
    async fn publish(&self, message: OutgoingMessage<'_>) -> Result<(), BoxError> {
        let started = (!self.observers.is_empty()).then(Instant::now);
        let span = spans::publish(self.scope.system, &message);
        let result = match &self.publisher {
            Some(layered) => layered.publish(message).instrument(span).await,
            None => self
                .broker
                .publish(message)
                .instrument(span)
                .await
                .map_err(Into::into),
        };
        let Some(started) = started else {
            return result;
        };
        let error = result
            .as_ref()
            .err()
            .map(|e| e.as_ref() as &(dyn std::error::Error + 'static));
        self.observers.published(&PublishAttempt {
            message: &message,
            system: self.scope.system,
            error,
            elapsed: started.elapsed(),
        });
        result
    }

    /// Tells the observers how the message is being settled.
    fn observe<M: IncomingMessage>(&self, message: &M, settlement: Settlement) {
        if !self.observers.is_empty() {
            self.observers
                .settled(&Message::of(message, &self.scope), settlement);
        }
    }

    /// Acks the message, telling the observers it was settled as `settlement` (acked, or
    /// dead-lettered and then acked).
    async fn ack_as<M: IncomingMessage>(&self, message: M, settlement: Settlement) {
        self.observe(&message, settlement);
        if let Err(message) = message.ack_now() {
            self.ack_later(message).await;
        }
    }

    /// The ack of a broker that acks with a round trip.
    async fn ack_later<M: IncomingMessage>(&self, message: M) {
        if let Err(error) = message.ack().await {
            self.ack_failed(&error);
        }
    }

    #[cold]
    fn ack_failed(&self, error: &AckError) {
        tracing::warn!(handler = %self.scope.handler, %error, "the ack failed; the broker may redeliver the message");
        self.observers
            .ack_failed(&Subscription::of(&self.scope), error);
    }

    async fn drop_message<M: IncomingMessage>(&self, message: M) {
        self.observe(&message, Settlement::Rejected);
        if let Err(error) = message.nack(false).await {
            tracing::warn!(handler = %self.scope.handler, %error, "rejecting the message failed; the broker may redeliver it");
        }
    }
}
