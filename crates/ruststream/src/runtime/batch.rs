//! Batch handlers: a handler called with several messages at once, on brokers whose
//! subscribers implement [`BatchSubscriber`], each message settled on its own.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::pin;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use super::dispatch::{
    Caught, Consume, End, Route, RouteContext, Slot, Worker, describe_route, launch, next_or_stop,
    panic_reason, prefixed, scope_for,
};
use super::outcome::Kind;
use super::subscriber::SubscriberOptions;
use super::{
    AppError, FailurePolicy, Format, HandlerResult, Message, Outcome, RuntimeBroker, SubscriberInfo,
};
use crate::{BatchSubscriber, BoxError, IncomingMessage, SubscriptionSource};

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
/// `()` acks every message; a [`HandlerResult`] settles every message alike; a
/// `Vec<HandlerResult>` settles each message as its entry says (one per decoded message,
/// in order); `Err` fails every message into the error policy.
pub trait IntoBatchOutcome {
    /// The outcome for a batch of `len` messages.
    fn into_batch_outcome(self, len: usize) -> Vec<Outcome>;
}

impl IntoBatchOutcome for () {
    fn into_batch_outcome(self, len: usize) -> Vec<Outcome> {
        HandlerResult::Ack.into_batch_outcome(len)
    }
}

impl IntoBatchOutcome for HandlerResult {
    fn into_batch_outcome(self, len: usize) -> Vec<Outcome> {
        (0..len).map(|_| Outcome::settle(self)).collect()
    }
}

impl IntoBatchOutcome for Vec<HandlerResult> {
    fn into_batch_outcome(self, len: usize) -> Vec<Outcome> {
        if self.len() != len {
            let reason = format!(
                "the batch handler returned {} results for {len} messages",
                self.len()
            );
            return (0..len).map(|_| Outcome::failed(reason.clone())).collect();
        }
        self.into_iter().map(Outcome::settle).collect()
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
                        .unwrap_or_else(|| Outcome::settle(HandlerResult::Ack))
                })
                .collect()
        }
    }
}

/// A batch subscription: a source, a batch handler, the batch size and wait, and the same
/// failure options as a [`SubscriberDef`](super::SubscriberDef).
#[derive(Debug, Clone)]
pub struct BatchSubscriberDef<S, H> {
    source: S,
    handler: H,
    max_messages: usize,
    max_wait: Duration,
    options: SubscriberOptions,
}

impl<S, H: BatchHandler> BatchSubscriberDef<S, H> {
    super::subscriber::shared_subscriber_options!();

    /// Batches of up to 100 messages, each waiting at most 100 ms to fill.
    pub fn new(source: S, handler: H) -> Self {
        Self {
            source,
            handler,
            max_messages: 100,
            max_wait: Duration::from_millis(100),
            options: SubscriberOptions::default(),
        }
    }

    /// The largest batch (at least 1).
    #[must_use]
    pub fn max_messages(mut self, max: usize) -> Self {
        self.max_messages = max.max(1);
        self
    }

    /// How long a batch waits to fill after its first message.
    #[must_use]
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait;
        self
    }
}

/// A batch handler with its batch size, as a worker runs it.
pub(crate) struct Batched<H> {
    handler: H,
    max_messages: usize,
    max_wait: Duration,
}

impl<B, H, Sub> Consume<Sub> for Worker<B, Batched<H>>
where
    B: RuntimeBroker,
    H: BatchHandler,
    Sub: BatchSubscriber,
{
    async fn consume(
        &self,
        subscriber: &mut Sub,
        intake: &super::intake::Intake,
    ) -> End<Sub::Error> {
        let batched = &self.handler;
        let mut batches = pin!(subscriber.batches(batched.max_messages, batched.max_wait));
        let mut stopped = pin!(intake.cancelled());
        let mut slot = Slot::new(self.scope.format);
        loop {
            match next_or_stop(batches.as_mut(), intake, stopped.as_mut()).await {
                None => return End::Intake,
                Some(None) => return End::Ended,
                Some(Some(Err(error))) => return End::Failed(error),
                Some(Some(Ok(batch))) => self.process_batch(batch, &mut slot).await,
            }
        }
    }
}

impl<B: RuntimeBroker, H: BatchHandler> Worker<B, Batched<H>> {
    async fn process_batch<M: IncomingMessage>(&self, batch: Vec<M>, slot: &mut Slot) {
        let outcomes = {
            let views: Vec<Message<'_>> =
                batch.iter().map(|m| Message::of(m, &self.scope)).collect();
            Caught::new(self.handler.handler.call(&views)).await
        };
        match outcomes {
            Ok(outcomes) => {
                let mut outcomes = outcomes.into_iter();
                for message in batch {
                    let outcome = outcomes
                        .next()
                        .map_or(Kind::Settle(HandlerResult::Ack), |o| o.0);
                    self.settle(message, outcome, slot).await;
                }
            }
            Err(panic) => {
                let reason = format!(
                    "the batch handler panicked: {}",
                    panic_reason(panic.as_ref())
                );
                tracing::error!(handler = %self.scope.handler, %reason, "the batch handler panicked");
                for message in batch {
                    self.fail(message, &reason, self.options.failures.panic_policy())
                        .await;
                }
            }
        }
    }
}

impl<B, S, H> Route<B> for BatchSubscriberDef<S, H>
where
    B: RuntimeBroker,
    S: SubscriptionSource<B> + Clone + Send + Sync + 'static,
    S::Subscriber: BatchSubscriber + 'static,
    H: BatchHandler,
{
    fn start(
        self: Box<Self>,
        broker: B,
        ctx: RouteContext,
    ) -> BoxFuture<'static, Result<JoinHandle<()>, AppError>> {
        let BatchSubscriberDef {
            source,
            handler,
            max_messages,
            max_wait,
            options,
        } = *self;
        let source = match prefixed(source, &ctx.prefix, &options) {
            Ok(source) => source,
            Err(error) => return Box::pin(async move { Err(error) }),
        };
        let destination = source.name().to_owned();
        let scope = scope_for::<B>(destination, &options, &ctx);
        let batched = Batched {
            handler,
            max_messages,
            max_wait,
        };
        launch(broker, source, batched, scope, options, ctx)
    }

    fn describe(&self, prefix: &str, format: Format) -> SubscriberInfo {
        describe_route(&self.source, prefix, &self.options, format)
    }
}
