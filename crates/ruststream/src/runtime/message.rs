//! [`Message`]: what a handler sees of one delivery.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::Format;
use crate::codec::CodecError;
use crate::headers::CORRELATION_ID;
use crate::{Capabilities, Headers, IncomingMessage};

/// On a dead letter: the attempt number of the delivery that gave up on it.
pub const ATTEMPT_HEADER: &str = "x-ruststream-attempt";

/// Values shared with every handler of an app, by type ([`App::state`](super::App::state)).
#[derive(Default, Clone)]
pub(crate) struct StateMap {
    values: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for StateMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMap")
            .field("values", &self.values.len())
            .finish()
    }
}

impl StateMap {
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: Arc<T>) {
        self.values.insert(TypeId::of::<T>(), value);
    }

    pub(crate) fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let value = Arc::clone(self.values.get(&TypeId::of::<T>())?);
        value.downcast::<T>().ok()
    }
}

/// A new [`Scope::id`].
pub(crate) fn next_scope_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// What a subscription shares with each of its deliveries.
#[derive(Debug)]
pub(crate) struct Scope {
    /// Unique in the process, never reused: lets observers cache per subscription by a
    /// number rather than by comparing names.
    pub(crate) id: u64,
    /// The messaging system of the subscription's broker ([`system_of`](super::system_of)).
    pub(crate) system: &'static str,
    pub(crate) handler: String,
    pub(crate) destination: String,
    pub(crate) format: Format,
    pub(crate) state: Arc<StateMap>,
    /// The producer of the subscription's own broker.
    pub(crate) own_producer: Option<Arc<dyn Any + Send + Sync>>,
    /// What the subscription's messages can do, as its subscriber states it.
    pub(crate) capabilities: Capabilities,
}

/// A delivered message as a handler sees it: payload, headers, metadata, and the app's
/// shared state. A borrowed, `Copy` view; take it as a handler argument to read
/// everything at once.
#[derive(Clone, Copy)]
pub struct Message<'a> {
    payload: &'a [u8],
    headers: &'a Headers,
    /// The rest is read from the delivery only when asked: most handlers never do.
    delivery: &'a dyn Delivered,
    scope: &'a Scope,
}

/// The metadata of a delivery, behind a vtable so a [`Message`] stays small and cheap to
/// make whatever the broker.
trait Delivered: Sync {
    fn name(&self) -> Option<&str>;
    fn reply_to(&self) -> Option<&str>;
    fn redelivery_count(&self) -> Option<u32>;
    fn partition_key(&self) -> Option<&[u8]>;
}

impl<M: IncomingMessage> Delivered for M {
    fn name(&self) -> Option<&str> {
        IncomingMessage::name(self)
    }

    fn reply_to(&self) -> Option<&str> {
        IncomingMessage::reply_to(self)
    }

    fn redelivery_count(&self) -> Option<u32> {
        IncomingMessage::redelivery_count(self)
    }

    fn partition_key(&self) -> Option<&[u8]> {
        IncomingMessage::partition_key(self)
    }
}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("handler", &self.scope.handler)
            .field("name", &self.name())
            .field("payload_len", &self.payload.len())
            .field("headers", self.headers)
            .field("redelivery_count", &self.redelivery_count())
            .finish_non_exhaustive()
    }
}

impl<'a> Message<'a> {
    #[inline]
    pub(crate) fn of<M: IncomingMessage>(message: &'a M, scope: &'a Scope) -> Self {
        Self {
            payload: message.payload(),
            headers: message.headers(),
            delivery: message,
            scope,
        }
    }

    /// The body, as published.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The headers, in publish order.
    pub fn headers(&self) -> &'a Headers {
        self.headers
    }

    /// The concrete name the message was published to, when the broker says.
    pub fn name(&self) -> Option<&'a str> {
        self.delivery.name()
    }

    /// Where a reply should go (request-reply).
    pub fn reply_to(&self) -> Option<&'a str> {
        self.delivery.reply_to()
    }

    /// The `correlation-id` header, if it is text.
    pub fn correlation_id(&self) -> Option<&'a str> {
        self.headers.get_str(CORRELATION_ID)
    }

    /// The partition key, when the broker carries one.
    pub fn partition_key(&self) -> Option<&'a [u8]> {
        self.delivery.partition_key()
    }

    /// Deliveries before this one, when the broker counts them.
    pub fn redelivery_count(&self) -> Option<u32> {
        self.delivery.redelivery_count()
    }

    /// This delivery's attempt number, from 1: the broker's redelivery count plus one,
    /// or 1 where the broker does not count.
    pub fn attempt(&self) -> u32 {
        attempt_of(self.redelivery_count())
    }

    /// What the subscription's messages can do (requeue, delayed requeue, redelivery
    /// count...), as its subscriber states it.
    pub fn capabilities(&self) -> Capabilities {
        self.scope.capabilities
    }

    /// The name of the handler this message was delivered to.
    pub fn handler(&self) -> &'a str {
        &self.scope.handler
    }

    /// The destination the subscription listens on (pattern or name).
    pub fn destination(&self) -> &'a str {
        &self.scope.destination
    }

    /// The messaging system of the broker it came from (`memory`, `nats`...; see
    /// [`system_of`](super::system_of)).
    pub fn system(&self) -> &'static str {
        self.scope.system
    }

    /// The subscriber's payload format.
    pub fn format(&self) -> Format {
        self.scope.format
    }

    /// Decodes the payload with the subscriber's format.
    #[inline(always)]
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, CodecError> {
        self.scope.format.decode(self.payload)
    }

    /// The producer of this subscription's own broker, if it is a `T`.
    pub(crate) fn own_producer<T: Send + Sync + 'static>(&self) -> Option<&'a T> {
        self.scope.own_producer.as_ref()?.downcast_ref::<T>()
    }

    /// The subscription it was delivered on, as observers see it.
    pub fn subscription(&self) -> super::Subscription<'a> {
        super::Subscription::of(self.scope)
    }

    /// A value of the app's shared state, by type.
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.scope.state.get::<T>()
    }
}

/// The attempt number from a broker's redelivery count (1 where it does not count).
pub(crate) fn attempt_of(redelivery_count: Option<u32>) -> u32 {
    redelivery_count.map_or(1, |count| count.saturating_add(1))
}
