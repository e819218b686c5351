//! [`Observer`]: hooks into the life of each message, for test harnesses and metrics.

use std::sync::Arc;
use std::time::Duration;

use super::Message;
use crate::{Headers, OutgoingMessage};

/// How the runtime settled a delivered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Settlement {
    /// Acked: handled (and any reply published).
    Acked,
    /// Handed back for redelivery: `nack(true)`, or `nack_after` when `delay` is set.
    Retried {
        /// The delay before the next attempt, if any.
        delay: Option<Duration>,
    },
    /// Published to the dead-letter destination, then acked.
    DeadLettered,
    /// Rejected for good (`nack(false)`).
    Rejected,
    /// Left unsettled for the broker to redeliver (a `Stop` policy, or shutdown).
    LeftUnsettled,
    /// A retry was asked for (`delay` is the wait asked for) on a subscription whose
    /// broker cannot redeliver ([`AckError::Unsupported`](crate::AckError::Unsupported)):
    /// the message will not come back.
    RetryUnsupported {
        /// The delay asked for, if any.
        delay: Option<Duration>,
    },
}

/// How a handler call ended.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Handled<'e> {
    /// It returned normally (its outcome may still ask for a retry).
    Completed,
    /// It returned an error.
    Failed(&'e (dyn std::error::Error + Send + Sync + 'static)),
    /// An argument could not be extracted (the payload did not decode, for example).
    Rejected(&'e super::Rejection),
    /// It panicked; the text of the panic.
    Panicked(&'e str),
}

/// Watches messages go through the runtime. Every method has an empty default; the
/// runtime calls none of them when no observer is installed.
///
/// Install one with [`App::observer`](super::App::observer). Calls happen on the
/// message's task, so keep them short and non-blocking.
pub trait Observer: Send + Sync + 'static {
    /// A message was delivered to a handler, which is about to run.
    fn received(&self, message: &Message<'_>) {
        let _ = message;
    }

    /// The handler finished, after `elapsed`.
    fn handled(&self, message: &Message<'_>, handled: Handled<'_>, elapsed: Duration) {
        let _ = (message, handled, elapsed);
    }

    /// The runtime is settling the message as `settlement`.
    fn settled(&self, message: &Message<'_>, settlement: Settlement) {
        let _ = (message, settlement);
    }

    /// A publish finished: a reply, a dead letter, or a [`Producer`](super::Producer)
    /// publish; [`PublishAttempt::error`] is `None` on success.
    fn published(&self, publication: &PublishAttempt<'_>) {
        let _ = publication;
    }

    /// An ack the broker confirms with a round trip failed (after
    /// [`settled`](Self::settled) said `Acked`): the broker may deliver the message again.
    fn ack_failed(&self, subscription: &Subscription<'_>, error: &crate::AckError) {
        let _ = (subscription, error);
    }
}

/// A subscription, as observers see it outside of one delivery.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Subscription<'a> {
    /// The messaging system of its broker (`memory`, `nats`...).
    pub system: &'static str,
    /// Its handler's name.
    pub handler: &'a str,
    /// What it subscribes to (pattern or name).
    pub destination: &'a str,
    id: u64,
}

impl<'a> Subscription<'a> {
    /// A number unique to the subscription for the life of the process, never reused:
    /// observers cache per subscription by it rather than by comparing names.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn of(scope: &'a super::message::Scope) -> Self {
        Self {
            system: scope.system,
            handler: &scope.handler,
            destination: &scope.destination,
            id: scope.id,
        }
    }
}

/// One finished publish, as [`Observer::published`] sees it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct PublishAttempt<'a> {
    /// The message as published: name, payload, headers, key, reply-to.
    pub message: &'a OutgoingMessage<'a>,
    /// The messaging system it went to (`memory`, `nats`...): see [`system_of`](super::system_of).
    pub system: &'a str,
    /// Why it failed; `None` on success.
    pub error: Option<&'a (dyn std::error::Error + 'static)>,
    /// How long the publish took.
    pub elapsed: Duration,
}

impl<'a> PublishAttempt<'a> {
    /// The destination it was published to.
    pub fn destination(&self) -> &'a str {
        self.message.name()
    }

    /// The body.
    pub fn payload(&self) -> &'a [u8] {
        self.message.payload()
    }

    /// The headers it was published with.
    pub fn headers(&self) -> &'a Headers {
        self.message.headers()
    }
}

/// The observers of an app, called in the order installed.
#[derive(Clone, Default)]
pub(crate) struct Observers(Vec<Arc<dyn Observer>>);

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Observers").field(&self.0.len()).finish()
    }
}

impl Observers {
    pub(crate) fn push(&mut self, observer: Arc<dyn Observer>) {
        self.0.push(observer);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn received(&self, message: &Message<'_>) {
        self.0.iter().for_each(|o| o.received(message));
    }

    pub(crate) fn handled(&self, message: &Message<'_>, handled: Handled<'_>, elapsed: Duration) {
        self.0
            .iter()
            .for_each(|o| o.handled(message, handled, elapsed));
    }

    pub(crate) fn settled(&self, message: &Message<'_>, settlement: Settlement) {
        self.0.iter().for_each(|o| o.settled(message, settlement));
    }

    pub(crate) fn published(&self, publication: &PublishAttempt<'_>) {
        self.0.iter().for_each(|o| o.published(publication));
    }

    pub(crate) fn ack_failed(&self, subscription: &Subscription<'_>, error: &crate::AckError) {
        self.0
            .iter()
            .for_each(|o| o.ack_failed(subscription, error));
    }
}

/// The messaging system a broker type stands for, as metrics labels and spans name it:
/// its type's name without the module path and a `Broker` suffix, in lower case
/// (`MemoryBroker` is `memory`, `NatsBroker` is `nats`).
///
/// Taken from the type, never from a URL or a configuration, so it can carry no
/// credential. Computed once per type.
pub fn system_of<B: 'static>() -> &'static str {
    use std::any::TypeId;
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock, PoisonError};
    static SYSTEMS: OnceLock<Mutex<HashMap<TypeId, &'static str>>> = OnceLock::new();
    let systems = SYSTEMS.get_or_init(Default::default);
    let mut systems = systems.lock().unwrap_or_else(PoisonError::into_inner);
    systems.entry(TypeId::of::<B>()).or_insert_with(|| {
        let full = std::any::type_name::<B>();
        let path = full.split('<').next().unwrap_or(full);
        let name = path.rsplit("::").next().unwrap_or(path);
        let name = name
            .strip_suffix("Broker")
            .filter(|n| !n.is_empty())
            .unwrap_or(name);
        Box::leak(name.to_ascii_lowercase().into_boxed_str())
    })
}
