//! The runtime: plain async functions become a service.
//!
//! | noun | what it is |
//! |---|---|
//! | [`Handler`] | handles one message; `#[subscriber]` or [`handler_fn`] make one of a function |
//! | [`FromMessage`] | how each handler argument is extracted: a decoded payload, [`Raw`], [`Text`], `&Headers`, [`Message`], [`State`], [`Producer`] |
//! | [`IntoOutcome`] | what a return value means: `()`, `Result`, [`Settle`], a reply |
//! | [`SubscriberDef`] | a source, a handler and its options (workers, failure policies, format) |
//! | [`BatchHandler`] | handles a batch of messages; mounted with [`SubscriberDef::batch`] |
//! | [`Router`] | subscribers under a prefix, nested |
//! | [`App`] | brokers with their routers, state, lifespan hooks, graceful shutdown |
//! | [`Producer`] | publishes typed values, inside handlers and out |
//!
//! The runtime acks a message after its handler returns. Decode failures, handler errors
//! and panics each follow a [`FailurePolicy`]; a panic is caught and never takes the
//! process down. A retry is the broker's own: `nack(true)`, or `nack_after(delay)` for a
//! delayed one, which each broker crate implements with its durable mechanism (an
//! immediate requeue where it has none). The runtime publishes no copies and no worker
//! waits for a delay; a broker that cannot redeliver says so and the retry is logged and
//! counted. [`FailurePolicy::RetryInPlace`] calls the handler again in the same worker,
//! on any broker.

mod app;
mod batch;
mod consume;
mod extract;
mod format;
mod handler;
mod health;
mod invoke;
mod message;
mod middleware;
mod observe;
mod outcome;
mod pipeline;
mod policy;
mod producer;
mod route;
mod router;
mod schema;
mod settle;
mod spans;
mod stop;
mod subscriber;

pub use app::{
    App, AppDescription, AppError, AppInfo, BrokerInfo, DEFAULT_SHUTDOWN_TIMEOUT, RunningApp,
};
pub use batch::{
    Batch, BatchElement, BatchHandler, BatchHandlerFn, IntoBatchOutcome, batch_handler_fn,
};
pub use extract::{FromMessage, Raw, Rejection, State, Text};
pub use format::Format;
pub use handler::{Handler, HandlerFn, handler_fn};
pub use health::{Component, Health, HealthReport};
pub use invoke::Invoke;
pub use message::{ATTEMPT_HEADER, Message};
pub use middleware::{BoxHandlerService, BoxPublishService, HandlerRequest, PublishRequest};
pub use observe::{Handled, Observer, PublishAttempt, Settlement, Subscription, system_of};
#[doc(hidden)]
pub use outcome::returned;
pub use outcome::{IntoOutcome, Outcome, ReplyBuffer, Respond, Settle};
pub use policy::{Backoff, FailurePolicy};
pub use producer::{MessageBuilder, Producer, ProducerError};
pub use router::Router;
pub use schema::TypeSchema;
#[doc(hidden)]
pub use schema::probe;
pub use settle::{DEAD_LETTER_HANDLER_HEADER, DEAD_LETTER_REASON_HEADER, ORIGINAL_NAME_HEADER};
pub use spans::SPAN_TARGET;
pub use subscriber::{IntoSubscriber, SubscriberDef, SubscriberInfo};

use crate::{Broker, Publisher};

/// What the runtime needs of a broker: the contract's lifecycle and publishing (for
/// replies and dead letters), and cheap clones shared by its subscriptions. Nothing
/// beyond the contract's required traits: every capability is optional.
pub trait RuntimeBroker: Broker + Publisher + Clone + Send + Sync + 'static {}

impl<T: Broker + Publisher + Clone + Send + Sync + 'static> RuntimeBroker for T {}
