//! The delivered message and how it is settled.

use std::future::Future;
use std::time::Duration;

use crate::contract::{AckError, Headers};

/// A message delivered by a [`Subscriber`](crate::Subscriber).
///
/// Settlement consumes the message: `ack(self)`, `nack(self, ..)` and `nack_after(self, ..)`
/// take it by value, so settling twice is a compile error. A message dropped without being
/// settled is left to the broker, which redelivers it where it tracks deliveries.
///
/// Only `payload`, `headers`, `ack` and `nack` are required. The other methods have
/// defaults that degrade gracefully, so a broker that overrides none of them still works
/// with every runtime feature.
pub trait IncomingMessage: Send + Sync + Sized {
    /// The body, exactly as published.
    fn payload(&self) -> &[u8];

    /// The headers, in the order they were published.
    fn headers(&self) -> &Headers;

    /// Confirms the message was handled; the broker will not deliver it again.
    fn ack(self) -> impl Future<Output = Result<(), AckError>> + Send;

    /// Acks at once, without a future, where the broker's ack is local (an in-process
    /// queue, or core NATS where there is nothing to confirm); gives the message back
    /// (`Err`) where it must go through [`ack`](Self::ack).
    ///
    /// Defaults to giving it back. The runtime tries it first on its common path, so a
    /// broker that overrides it acks without building, polling and dropping a future:
    /// about a tenth of the runtime's own cost per message. `Ok` must mean exactly what a
    /// successful `ack` means.
    fn ack_now(self) -> Result<(), Self> {
        Err(self)
    }

    /// Rejects the message: `requeue = true` asks for redelivery, `false` drops it (or
    /// dead-letters it where the broker is configured to). A broker that cannot requeue
    /// answers `nack(true)` with [`AckError::Unsupported`].
    fn nack(self, requeue: bool) -> impl Future<Output = Result<(), AckError>> + Send;

    /// Asks for redelivery after `delay`.
    ///
    /// Defaults to an immediate `nack(true)`. Brokers with a durable delayed redelivery
    /// (JetStream NAK with delay, for example) override it and declare
    /// [`Capabilities::delayed_requeue`](crate::contract::Capabilities::delayed_requeue).
    /// A broker that cannot requeue at all answers [`AckError::Unsupported`]. Handlers
    /// reach it through `Settle::RetryAfter`.
    fn nack_after(self, delay: Duration) -> impl Future<Output = Result<(), AckError>> + Send {
        let _ = delay;
        self.nack(true)
    }

    /// The key that keeps related messages in order, if the broker carries one.
    ///
    /// Defaults to `None`. Brokers with the [`Partitioned`](crate::Partitioned) capability
    /// override it; the runtime's keyed lanes (`workers(n, by_key)`) use it and rotate
    /// keyless messages.
    fn partition_key(&self) -> Option<&[u8]> {
        None
    }

    /// The concrete name the message was published to (useful under wildcard
    /// subscriptions). Defaults to `None` (unknown).
    fn name(&self) -> Option<&str> {
        None
    }

    /// Where a reply to this message should be published, for request-reply.
    /// Defaults to `None`.
    fn reply_to(&self) -> Option<&str> {
        None
    }

    /// How many times this message was delivered before this delivery (`Some(0)` on the
    /// first). Defaults to `None`: the broker does not say.
    fn redelivery_count(&self) -> Option<u32> {
        None
    }
}
