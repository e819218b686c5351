//! [`MemoryMessage`] and the shared [`Envelope`] it reads from.

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use super::envelope::{EMPTY_ENVELOPE, Envelope};
use super::queue::Delivery;
use crate::{AckError, Headers, IncomingMessage};

/// Whether settlement is real (the memory broker) or recorded only (a `TestClient`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Redelivery {
    /// `nack(true)`, `nack_after` and unsettled drops redeliver.
    Enabled,
    /// Core routing only: settlement never redelivers.
    Disabled,
}

/// A message delivered by the memory broker.
///
/// `nack(true)` puts it back at the front of its queue (a fan-out subscriber first hands
/// out what it has already taken ahead: every message that was ready when it last looked);
/// `nack_after(d)` does so after `d`;
/// a message dropped without settlement is redelivered too, so nothing in hand is lost
/// when a handler task dies.
#[derive(Debug)]
pub struct MemoryMessage {
    /// `None` once settled.
    delivery: Option<Delivery>,
}

impl MemoryMessage {
    #[inline]
    pub(crate) fn new(delivery: Delivery) -> Self {
        Self {
            delivery: Some(delivery),
        }
    }

    #[inline]
    fn envelope(&self) -> &Envelope {
        self.delivery
            .as_ref()
            .map_or(&EMPTY_ENVELOPE, |d| &d.envelope)
    }

    /// Settles for good: the envelope is let go, for its queue to refill (see
    /// `EnvelopeRing`).
    #[inline(always)]
    fn finish(&mut self) {
        self.delivery = None;
    }

    /// Settles by putting the message back, after `delay` if given.
    fn redeliver(&mut self, delay: Option<Duration>) {
        let Some(again) = self.delivery.take() else {
            return;
        };
        // Its queue is gone with its subscription: nobody is left to redeliver to.
        let Some(queue) = again.envelope.home() else {
            return;
        };
        if queue.redelivery == Redelivery::Disabled {
            return;
        }
        again.envelope.redelivered();
        let runtime =
            delay.and_then(|d| tokio::runtime::Handle::try_current().ok().map(|rt| (d, rt)));
        match runtime {
            Some((delay, runtime)) => queue.requeue_after(again, delay, &runtime),
            // Without a tokio runtime there is no timer: redeliver at once rather than lose it.
            None => queue.requeue(again),
        }
    }
}

impl Drop for MemoryMessage {
    #[inline]
    fn drop(&mut self) {
        // Settled messages (the common case) have nothing left to do: no call for them.
        if self.delivery.is_some() {
            self.redeliver(None);
        }
    }
}

impl IncomingMessage for MemoryMessage {
    #[inline]
    fn payload(&self) -> &[u8] {
        &self.envelope().payload
    }

    #[inline]
    fn headers(&self) -> &Headers {
        &self.envelope().headers
    }

    /// Always at once: the queue is in this process.
    #[inline(always)]
    fn ack_now(mut self) -> Result<(), Self> {
        self.finish();
        Ok(())
    }

    #[inline]
    fn ack(mut self) -> impl Future<Output = Result<(), AckError>> + Send {
        // A plain poll function rather than an `async` body: no state to switch on, small
        // enough to inline into the runtime's loop. Still lazy: settled when polled.
        std::future::poll_fn(move |_| {
            self.finish();
            Poll::Ready(Ok(()))
        })
    }

    async fn nack(mut self, requeue: bool) -> Result<(), AckError> {
        if requeue {
            self.redeliver(None);
        } else {
            self.finish();
        }
        Ok(())
    }

    async fn nack_after(mut self, delay: Duration) -> Result<(), AckError> {
        self.redeliver(Some(delay));
        Ok(())
    }

    #[inline]
    fn partition_key(&self) -> Option<&[u8]> {
        self.envelope().key()
    }

    #[inline]
    fn name(&self) -> Option<&str> {
        self.delivery.as_ref().map(|d| d.envelope.name())
    }

    #[inline]
    fn reply_to(&self) -> Option<&str> {
        self.envelope().reply_to()
    }

    #[inline]
    fn redelivery_count(&self) -> Option<u32> {
        self.delivery.as_ref().map(|d| d.envelope.redeliveries())
    }
}
