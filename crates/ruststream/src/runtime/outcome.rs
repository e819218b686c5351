//! What a handler's return value means: [`Settle`], [`Respond`] and [`IntoOutcome`].

use std::time::Duration;

use serde::Serialize;

use super::{Format, Rejection};
use crate::BoxError;
use crate::codec::CodecError;

/// An explicit settlement decision, for handlers that want to say more than ok/error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Settle {
    /// Done: ack the message.
    Ack,
    /// Ask for redelivery now (counts as an attempt).
    Retry,
    /// Ask for redelivery after the delay (counts as an attempt): the broker's
    /// `nack_after`, its durable delayed redelivery (an immediate requeue where it has
    /// none). No worker waits for the delay.
    RetryAfter(Duration),
    /// Reject the message for good (`nack(false)`).
    Drop,
}

/// A value to publish in answer: to the request's reply destination, or to the
/// subscriber's declared `publish_to` destinations.
///
/// A `#[subscriber]` handler may return the value itself; handlers written by hand wrap
/// it in `Respond`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Respond<T>(pub T);

/// Where a handler's reply is encoded; reused from one message to the next, so replying
/// does not allocate in steady state.
#[derive(Debug)]
pub struct ReplyBuffer {
    pub(crate) format: Format,
    pub(crate) body: Vec<u8>,
}

impl ReplyBuffer {
    pub(crate) fn new(format: Format) -> Self {
        Self {
            format,
            body: Vec::new(),
        }
    }

    /// Encodes `value` as the reply with the subscriber's format.
    pub fn encode<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CodecError> {
        self.body.clear();
        self.format.encode(value, &mut self.body)
    }

    /// The encoded reply.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

/// The result of one handler call, as the runtime settles it.
#[derive(Debug)]
pub struct Outcome(pub(crate) Kind);

#[derive(Debug)]
pub(crate) enum Kind {
    Settle(Settle),
    /// The reply is in the [`ReplyBuffer`]; publish it, then ack.
    Reply,
    Failed(BoxError),
    /// Boxed: a rejection is rare, and a small `Outcome` is cheap to move on every call.
    Rejected(Box<Rejection>),
    /// The handler panicked; the text of the panic.
    Panicked(Box<str>),
    /// One outcome per message of a batch, in order.
    Each(Vec<Outcome>),
}

impl Kind {
    /// A copy for another message of the same batch (an error is copied as its text).
    pub(crate) fn duplicate(&self) -> Kind {
        match self {
            Kind::Settle(result) => Kind::Settle(*result),
            Kind::Reply => Kind::Reply,
            Kind::Failed(error) => Kind::Failed(error.to_string().into()),
            Kind::Rejected(rejection) => {
                Kind::Rejected(Box::new(Rejection::Other(rejection.to_string())))
            }
            Kind::Panicked(reason) => Kind::Panicked(reason.clone()),
            Kind::Each(each) => super::pipeline::count_mismatch(each.len(), 1),
        }
    }
}

impl Outcome {
    /// Settle as `result` says.
    pub fn settle(result: Settle) -> Self {
        Outcome(Kind::Settle(result))
    }

    /// The handler failed: the subscriber's error policy applies.
    pub fn failed(error: impl Into<BoxError>) -> Self {
        Outcome(Kind::Failed(error.into()))
    }

    /// An argument could not be extracted: the subscriber's decode-failure policy applies.
    pub fn rejected(rejection: Rejection) -> Self {
        Outcome(Kind::Rejected(Box::new(rejection)))
    }

    /// A reply was encoded into the [`ReplyBuffer`]: publish it, then ack.
    pub fn replied() -> Self {
        Outcome(Kind::Reply)
    }

    /// A batch's outcome: one per message, in order. A batch whose count of outcomes
    /// differs from its count of messages fails as a whole.
    pub fn each(outcomes: Vec<Outcome>) -> Self {
        Outcome(Kind::Each(outcomes))
    }
}

/// Turns a handler's return value into an [`Outcome`].
///
/// `()` acks; [`Settle`] settles as it says; `Result<T, E>` is `T`'s outcome or,
/// on `Err`, a failure for the error policy; [`Respond<T>`] publishes `T` as the reply.
pub trait IntoOutcome {
    /// The outcome, with any reply encoded into `reply`.
    fn into_outcome(self, reply: &mut ReplyBuffer) -> Outcome;
}

impl IntoOutcome for () {
    fn into_outcome(self, _: &mut ReplyBuffer) -> Outcome {
        Outcome::settle(Settle::Ack)
    }
}

impl IntoOutcome for Settle {
    fn into_outcome(self, _: &mut ReplyBuffer) -> Outcome {
        Outcome::settle(self)
    }
}

impl IntoOutcome for Outcome {
    fn into_outcome(self, _: &mut ReplyBuffer) -> Outcome {
        self
    }
}

impl<T: Serialize> IntoOutcome for Respond<T> {
    fn into_outcome(self, reply: &mut ReplyBuffer) -> Outcome {
        match reply.encode(&self.0) {
            Ok(()) => Outcome::replied(),
            Err(error) => Outcome::failed(error),
        }
    }
}

impl<T: IntoOutcome, E: Into<BoxError>> IntoOutcome for Result<T, E> {
    fn into_outcome(self, reply: &mut ReplyBuffer) -> Outcome {
        match self {
            Ok(value) => value.into_outcome(reply),
            Err(error) => Outcome::failed(error),
        }
    }
}

/// Used by `#[subscriber]`: a return value that is not an [`IntoOutcome`] but is
/// `Serialize` becomes the reply, chosen at compile time by method resolution.
#[doc(hidden)]
pub mod returned {
    use super::{IntoOutcome, Outcome, ReplyBuffer, Respond};

    /// A handler's return value, waiting to be turned into an outcome.
    pub struct Returned<T>(pub T);

    /// First choice: the value is an outcome already.
    pub trait ViaOutcome {
        /// Turns the value into an outcome.
        fn into_handler_outcome(self, reply: &mut ReplyBuffer) -> Outcome;
    }

    impl<T: IntoOutcome> ViaOutcome for Returned<T> {
        fn into_handler_outcome(self, reply: &mut ReplyBuffer) -> Outcome {
            self.0.into_outcome(reply)
        }
    }

    /// Second choice (through auto-ref): the value is a reply.
    pub trait ViaReply {
        /// Encodes the value as the reply.
        fn into_handler_outcome(self, reply: &mut ReplyBuffer) -> Outcome;
    }

    impl<T: serde::Serialize> ViaReply for &Returned<T> {
        fn into_handler_outcome(self, reply: &mut ReplyBuffer) -> Outcome {
            Respond(&self.0).into_outcome(reply)
        }
    }
}
