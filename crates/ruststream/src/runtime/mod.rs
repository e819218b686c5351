//! The runtime: plain async functions become a service.
//!
//! | noun | what it is |
//! |---|---|
//! | [`Handler`] | handles one message; `#[subscriber]` or [`handler_fn`] make one of a function |
//! | [`FromMessage`] | how each handler argument is extracted: a decoded payload, [`Raw`], [`Text`], `&Headers`, [`Message`], [`State`], [`Producer`] |
//! | [`IntoOutcome`] | what a return value means: `()`, `Result`, [`HandlerResult`], a reply |
//! | [`SubscriberDef`] | a source, a handler and its options (workers, failure policies, format) |
//! | [`Router`] | subscribers under a prefix, nested |
//! | [`App`] | brokers with their routers, state, lifespan hooks, graceful shutdown |
//! | [`Producer`] | publishes typed values, inside handlers and out |
//!
//! The runtime acks a message after its handler returns. Decode failures, handler errors
//! and panics each follow a [`FailurePolicy`]; a panic is caught and never takes the
//! process down. Retries use the broker's native delayed redelivery where it has one;
//! elsewhere the runtime publishes a copy carrying the attempt number and due time
//! before settling the original, so a crash in between can duplicate a message but never
//! lose it.

mod app;
mod batch;

mod dispatch;
mod extract;
mod format;
mod handler;
mod health;
mod intake;
mod message;
mod middleware;

mod observe;

mod outcome;
mod policy;
mod producer;
mod router;
mod schema;
mod spans;
mod subscriber;

pub use app::{
    App, AppDescription, AppError, AppInfo, BrokerInfo, DEFAULT_SHUTDOWN_TIMEOUT, RunningApp,
};
pub use batch::{
    BatchHandler, BatchHandlerFn, BatchSubscriberDef, IntoBatchOutcome, batch_handler_fn,
};
pub use dispatch::{
    DEAD_LETTER_HANDLER_HEADER, DEAD_LETTER_REASON_HEADER, NOT_BEFORE_HEADER, ORIGINAL_NAME_HEADER,
    RETRY_FOR_HEADER,
};
pub use extract::{FromMessage, Raw, Rejection, State, Text};
pub use format::Format;
pub use handler::{Handler, HandlerFn, handler_fn};
pub use health::{Component, Health, HealthReport};
pub use message::{ATTEMPT_HEADER, Message};
pub use middleware::{BoxHandlerService, BoxPublishService, HandlerRequest, PublishRequest};
pub use observe::{Handled, Observer, Publication, Settlement, system_of};
#[doc(hidden)]
pub use outcome::returned;
pub use outcome::{HandlerResult, IntoOutcome, Outcome, ReplyBuffer, Respond};
pub use policy::{Backoff, FailurePolicy};
pub use producer::{Producer, Publish, PublishError};
pub use router::Router;
pub use schema::TypeSchema;
#[doc(hidden)]
pub use schema::probe;
pub use spans::SPAN_TARGET;
pub use subscriber::{IntoSubscriber, SubscriberDef, SubscriberInfo, WithPrefix};

use crate::{Broker, DescribeServer, Publisher};

/// What the runtime needs of a broker: lifecycle, publishing (for replies, retries and
/// dead letters), cheap clones shared by its subscriptions, and a description of its
/// server (the `servers` of the AsyncAPI document, never with credentials).
pub trait RuntimeBroker:
    Broker + Publisher + DescribeServer + Clone + Send + Sync + 'static
{
}

impl<T: Broker + Publisher + DescribeServer + Clone + Send + Sync + 'static> RuntimeBroker for T {}
