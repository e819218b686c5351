//! Batch handlers: a handler called with several messages at once, on brokers whose
//! subscribers implement [`BatchSubscriber`](crate::BatchSubscriber). A batch goes
//! through the same pipeline as a message (layers, span, observers, failure policies)
//! and each of its messages is settled on its own.

use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::{Message, Outcome, Settle};
use crate::BoxError;

/// Handles a batch of messages and says how to settle each.
pub trait BatchHandler: Send + Sync + 'static {
    /// Handles `batch`; returns one outcome per message, in order.
    fn call<'a>(
        &'a self,
        batch: &'a [Message<'a>],
    ) -> impl Future<Output = Vec<Outcome>> + Send + 'a;
}

/// What a batch handler's return value means.
///
/// `()` acks every message; a [`Settle`] settles every message alike; a `Vec` of
/// per-message results ([`BatchElement`]: `Settle`, `()`, `Result<_, E>`) settles
/// each message as its entry says (one per decoded message, in order); `Err` fails every
/// message into the error policy.
pub trait IntoBatchOutcome {
    /// The outcome for a batch of `len` messages.
    fn into_batch_outcome(self, len: usize) -> Vec<Outcome>;
}

impl IntoBatchOutcome for () {
    fn into_batch_outcome(self, len: usize) -> Vec<Outcome> {
        Settle::Ack.into_batch_outcome(len)
    }
}

impl IntoBatchOutcome for Settle {
    fn into_batch_outcome(self, len: usize) -> Vec<Outcome> {
        (0..len).map(|_| Outcome::settle(self)).collect()
    }
}

impl<T: BatchElement> IntoBatchOutcome for Vec<T> {
    fn into_batch_outcome(self, len: usize) -> Vec<Outcome> {
        if self.len() != len {
            let reason = format!(
                "the batch handler returned {} results for {len} messages",
                self.len()
            );
            return (0..len).map(|_| Outcome::failed(reason.clone())).collect();
        }
        self.into_iter()
            .map(BatchElement::into_element_outcome)
            .collect()
    }
}

/// One message's result in a batch handler's `Vec` of results: `()` acks,
/// [`Settle`] settles as it says, `Err` fails the message into the error policy.
pub trait BatchElement {
    /// The message's outcome.
    fn into_element_outcome(self) -> Outcome;
}

impl BatchElement for () {
    fn into_element_outcome(self) -> Outcome {
        Outcome::settle(Settle::Ack)
    }
}

impl BatchElement for Settle {
    fn into_element_outcome(self) -> Outcome {
        Outcome::settle(self)
    }
}

impl<T: BatchElement, E: Into<BoxError>> BatchElement for Result<T, E> {
    fn into_element_outcome(self) -> Outcome {
        match self {
            Ok(value) => value.into_element_outcome(),
            Err(error) => Outcome::failed(error),
        }
    }
}

impl<T: IntoBatchOutcome, E: Into<BoxError>> IntoBatchOutcome for Result<T, E> {
    fn into_batch_outcome(self, len: usize) -> Vec<Outcome> {
        match self {
            Ok(value) => value.into_batch_outcome(len),
            Err(error) => {
                let reason = error.into().to_string();
                (0..len).map(|_| Outcome::failed(reason.clone())).collect()
            }
        }
    }
}

/// A closure or function of `Vec<T>` used as a [`BatchHandler`]; see [`batch_handler_fn`].
pub struct BatchHandlerFn<F, T> {
    function: F,
    _payload: PhantomData<fn(T)>,
}

impl<F, T> std::fmt::Debug for BatchHandlerFn<F, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BatchHandlerFn")
    }
}

/// Makes a batch handler of an async function taking `Vec<T>`: each payload is decoded
/// with the subscriber's format; a message that does not decode is settled by the decode
/// policy on its own and left out of the `Vec`.
///
/// ```
/// use ruststream::runtime::batch_handler_fn;
///
/// #[derive(serde::Deserialize)]
/// struct Reading { value: f64 }
///
/// let handler = batch_handler_fn(|readings: Vec<Reading>| async move {
///     let total: f64 = readings.iter().map(|r| r.value).sum();
///     println!("{} readings, total {total}", readings.len());
/// });
/// # let _ = handler;
/// ```
pub fn batch_handler_fn<F, Fut, T>(function: F) -> BatchHandlerFn<F, T>
where
    F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
    Fut: Future + Send,
    Fut::Output: IntoBatchOutcome,
    T: DeserializeOwned + Send + 'static,
{
    BatchHandlerFn {
        function,
        _payload: PhantomData,
    }
}

impl<F, Fut, T> BatchHandler for BatchHandlerFn<F, T>
where
    F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
    Fut: Future + Send,
    Fut::Output: IntoBatchOutcome,
    T: DeserializeOwned + Send + 'static,
{
    #[allow(clippy::manual_async_fn)] // an `async fn` here would need `Fut: 'a`
    fn call<'a>(
        &'a self,
        batch: &'a [Message<'a>],
    ) -> impl Future<Output = Vec<Outcome>> + Send + 'a {
        async move {
            let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(batch.len());
            let mut values = Vec::with_capacity(batch.len());
            for message in batch {
                match message.decode::<T>() {
                    Ok(value) => {
                        values.push(value);
                        outcomes.push(None);
                    }
                    Err(error) => outcomes.push(Some(Outcome::rejected(error.into()))),
                }
            }
            let decoded = values.len();
            let mut settled = (self.function)(values)
                .await
                .into_batch_outcome(decoded)
                .into_iter();
            outcomes
                .into_iter()
                .map(|outcome| {
                    outcome
                        .or_else(|| settled.next())
                        .unwrap_or_else(|| Outcome::settle(Settle::Ack))
                })
                .collect()
        }
    }
}

/// A batch handler with its batch size and wait: the handler of a subscriber made with
/// [`SubscriberDef::batch`](super::SubscriberDef::batch).
#[derive(Debug, Clone)]
pub struct Batch<H> {
    pub(crate) handler: H,
    pub(crate) max_messages: usize,
    pub(crate) max_wait: Duration,
}

impl<H: BatchHandler> Batch<H> {
    /// Batches of up to 100 messages, each waiting at most 100 ms to fill.
    pub fn new(handler: H) -> Self {
        Self {
            handler,
            max_messages: 100,
            max_wait: Duration::from_millis(100),
        }
    }
}
