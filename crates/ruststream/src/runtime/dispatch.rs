//! The per-subscription loop: read the stream, call the handler, settle the message.
//!
//! One task per subscriber. With `workers(1)` messages are handled one at a time in the
//! loop itself; with `workers(n)` `n` worker futures share the stream inside the task;
//! with `workers_by_key(n)` a dispatcher feeds `n` lanes by partition key. Nothing on this
//! path allocates per message: the reply buffer and reply headers are reused.

use std::future::{Future, poll_fn};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::Stream;
use futures::future::{BoxFuture, MaybeDone, maybe_done};
use tokio::task::JoinHandle;
use tokio_util::sync::WaitForCancellationFuture;
use tracing::Instrument as _;

use super::health::Flag;
use super::intake::Intake;
use super::message::{ATTEMPT_HEADER, Scope, StateMap, attempt_of};
use super::middleware::{BoxedLayer, LayeredHandler, LayeredPublisher};
use super::observe::{Handled, Observers, Publication, Settlement};
use super::outcome::{Kind, Outcome};
use super::policy::Backoff;
use super::spans;
use super::subscriber::SubscriberOptions;
use super::{
    AppError, FailurePolicy, Format, Handler, HandlerResult, Health, Message, ReplyBuffer,
    RuntimeBroker, SubscriberDef, SubscriberInfo,
};
use crate::headers::{CONTENT_TYPE, CORRELATION_ID};
use crate::{
    BoxError, Broker, Headers, IncomingMessage, OutgoingMessage, Subscriber, SubscriptionSource,
};

/// On a dead-lettered message: why it was dead-lettered.
pub const DEAD_LETTER_REASON_HEADER: &str = "x-ruststream-dead-letter-reason";
/// On a dead-lettered message: the handler that gave up on it.
pub const DEAD_LETTER_HANDLER_HEADER: &str = "x-ruststream-dead-letter-handler";
/// On a dead-lettered message: the name it was originally published to.
pub const ORIGINAL_NAME_HEADER: &str = "x-ruststream-original-name";

/// How long to wait before subscribing again after a failure, by consecutive failures.
const RESUBSCRIBE: Backoff = Backoff {
    initial: Duration::from_millis(100),
    max: Duration::from_secs(10),
    multiplier: 2.0,
    jitter: 0.2,
};

/// What every route of an app shares when it starts.
#[derive(Debug, Clone)]
pub(crate) struct RouteContext {
    pub(crate) prefix: String,
    pub(crate) format: Format,
    pub(crate) state: Arc<StateMap>,
    /// Cancelled when intake must stop (shutdown).
    pub(crate) intake: Intake,
    /// Cancelled by a `Stop` policy to ask the app to shut down; `intake` is its child.
    pub(crate) stop_app: Intake,
    pub(crate) observers: Arc<Observers>,
    /// Router and app layers, innermost first.
    pub(crate) layers: Arc<[BoxedLayer]>,
    /// The broker's publish path with the app's publish layers, if any.
    pub(crate) publisher: Option<Arc<LayeredPublisher>>,
    /// The route's own broker's `Producer<B>`, for its handlers' `Producer<B>` arguments.
    pub(crate) own_producer: Option<Arc<dyn std::any::Any + Send + Sync>>,
    /// Where each subscription says whether it is consuming.
    pub(crate) health: Health,
}

/// A mounted subscriber, type-erased so one router holds many.
pub(crate) trait Route<B>: Send {
    /// Subscribes, then spawns the subscription's task. Fails if the first subscribe
    /// fails, so a misconfigured subscriber stops the start with its name.
    fn start(
        self: Box<Self>,
        broker: B,
        ctx: RouteContext,
    ) -> BoxFuture<'static, Result<JoinHandle<()>, AppError>>;

    /// What the subscriber is, under the given prefix and inherited format.
    fn describe(&self, prefix: &str, format: Format) -> SubscriberInfo;
}

impl<B, S, H> Route<B> for SubscriberDef<S, H>
where
    B: RuntimeBroker,
    S: SubscriptionSource<B> + Clone + Send + Sync + 'static,
    S::Subscriber: 'static,
    H: Handler,
{
    fn start(
        self: Box<Self>,
        broker: B,
        ctx: RouteContext,
    ) -> BoxFuture<'static, Result<JoinHandle<()>, AppError>> {
        let SubscriberDef {
            source,
            handler,
            options,
            mut layers,
        } = *self;
        let source = match prefixed(source, &ctx.prefix, &options) {
            Ok(source) => source,
            Err(error) => return Box::pin(async move { Err(error) }),
        };
        let destination = source.name().to_owned();
        let scope = scope_for::<B>(destination, &options, &ctx);
        layers.extend(ctx.layers.iter().cloned());
        if layers.is_empty() {
            launch(broker, source, handler, scope, options, ctx)
        } else {
            let handler = LayeredHandler::new(handler, &layers);
            launch(broker, source, handler, scope, options, ctx)
        }
    }

    fn describe(&self, prefix: &str, format: Format) -> SubscriberInfo {
        describe_route(&self.source, prefix, &self.options, format)
    }
}

/// `source` under a router's `prefix`, or an error naming the handler where the source
/// cannot take one.
pub(crate) fn prefixed<B: Broker, S: SubscriptionSource<B>>(
    source: S,
    prefix: &str,
    options: &SubscriberOptions,
) -> Result<S, AppError> {
    if prefix.is_empty() {
        return Ok(source);
    }
    source.with_prefix(prefix).map_err(|source| {
        let destination = source.name().to_owned();
        AppError::Unsupported {
            handler: options.name.clone().unwrap_or_else(|| destination.clone()),
            destination,
            needs: "a router prefix on its descriptor (`SubscriptionSource::with_prefix`)",
            fix: format!(
                "mount it on a router without a prefix, or write `{prefix}` into the descriptor's name"
            ),
        }
    })
}

/// What a route is, under `prefix`: a source that cannot take the prefix is listed under
/// its own name (the app refuses to start it).
pub(crate) fn describe_route<B: Broker, S: SubscriptionSource<B> + Clone>(
    source: &S,
    prefix: &str,
    options: &SubscriberOptions,
    format: Format,
) -> SubscriberInfo {
    let under_prefix = prefixed(source.clone(), prefix, options);
    let mut info = match &under_prefix {
        Ok(prefixed) => options.describe(prefixed.name(), format),
        Err(_) => options.describe(source.name(), format),
    };
    info.operation_bindings = source.operation_bindings();
    info
}

/// Refuses options the subscription's broker cannot honour, by its capabilities.
fn check_capabilities(
    scope: &Scope,
    options: &SubscriberOptions,
    capabilities: crate::Capabilities,
) -> Result<(), AppError> {
    let Some(max_attempts) = options.failures.max_attempts else {
        return Ok(());
    };
    if capabilities.requeue && !capabilities.redelivery_count {
        return Err(AppError::Unsupported {
            handler: scope.handler.clone(),
            destination: scope.destination.clone(),
            needs: "redelivery counts for `max_attempts`",
            fix: format!(
                "its broker redelivers but does not count deliveries, so `max_attempts({max_attempts})` could never be reached: remove it, or use `FailurePolicy::RetryInPlace`, whose attempts the runtime counts"
            ),
        });
    }
    if !capabilities.requeue {
        tracing::warn!(handler = %scope.handler, destination = %scope.destination, max_attempts, "`max_attempts` has no effect here: this subscription's broker does not redeliver, so every message gets one attempt");
    }
    Ok(())
}

/// What a subscription shares with each of its deliveries, from its options and route.
pub(crate) fn scope_for<B: RuntimeBroker>(
    destination: String,
    options: &SubscriberOptions,
    ctx: &RouteContext,
) -> Scope {
    Scope {
        id: super::message::next_scope_id(),
        system: super::system_of::<B>(),
        handler: options.name.clone().unwrap_or_else(|| destination.clone()),
        destination,
        format: options.format.unwrap_or(ctx.format),
        state: Arc::clone(&ctx.state),
        own_producer: ctx.own_producer.clone(),
        // Until the first subscribe says what the subscription can do.
        capabilities: crate::Capabilities::DEFAULT,
    }
}

/// Subscribes once (so a bad subscriber fails the start), then spawns the loop.
pub(crate) fn launch<B, S, H>(
    broker: B,
    source: S,
    handler: H,
    mut scope: Scope,
    options: SubscriberOptions,
    ctx: RouteContext,
) -> BoxFuture<'static, Result<JoinHandle<()>, AppError>>
where
    B: RuntimeBroker,
    S: SubscriptionSource<B> + Clone + Send + Sync + 'static,
    S::Subscriber: 'static,
    H: Send + Sync + 'static,
    Worker<B, H>: Consume<S::Subscriber>,
{
    let up = ctx.health.subscription(&scope.handler, &scope.destination);
    Box::pin(async move {
        let first =
            source
                .clone()
                .subscribe(&broker)
                .await
                .map_err(|error| AppError::Subscribe {
                    handler: scope.handler.clone(),
                    destination: scope.destination.clone(),
                    source: error.into(),
                })?;
        scope.capabilities = first.capabilities();
        check_capabilities(&scope, &options, scope.capabilities)?;
        let worker = Worker {
            broker,
            handler,
            scope,
            options,
            intake: ctx.intake.clone(),
            stop_app: ctx.stop_app,
            observers: ctx.observers,
            publisher: ctx.publisher,
        };
        up.set(true);
        Ok(tokio::spawn(run(worker, source, first, ctx.intake, up)))
    })
}

/// Everything needed to handle and settle one message of a subscription.
pub(crate) struct Worker<B, H> {
    pub(crate) broker: B,
    pub(crate) handler: H,
    pub(crate) scope: Scope,
    pub(crate) options: SubscriberOptions,
    /// Cancelled when intake stops: ends an in-place retry's wait.
    intake: Intake,
    stop_app: Intake,
    observers: Arc<Observers>,
    publisher: Option<Arc<LayeredPublisher>>,
}

/// Why consuming a subscription stopped.
pub(crate) enum End<E> {
    /// Intake was stopped on purpose.
    Intake,
    /// The stream ended without being asked to.
    Ended,
    /// The stream yielded an error.
    Failed(E),
}

/// Per-worker buffers reused from one message to the next.
pub(crate) struct Slot {
    reply: ReplyBuffer,
    headers: Headers,
}

impl Slot {
    pub(crate) fn new(format: Format) -> Self {
        Self {
            reply: ReplyBuffer::new(format),
            headers: Headers::new(),
        }
    }
}

async fn run<B, S, H>(
    worker: Worker<B, H>,
    source: S,
    first: S::Subscriber,
    intake: Intake,
    up: Arc<Flag>,
) where
    B: RuntimeBroker,
    S: SubscriptionSource<B> + Clone + Send + Sync + 'static,
    H: Send + Sync + 'static,
    Worker<B, H>: Consume<S::Subscriber>,
{
    let mut failures = 0u32;
    let mut first = Some(first);
    while !intake.is_cancelled() {
        let subscribed = match first.take() {
            Some(subscriber) => Ok(subscriber),
            None => tokio::select! {
                biased;
                () = intake.cancelled() => return,
                subscribed = source.clone().subscribe(&worker.broker) => subscribed,
            },
        };
        match subscribed {
            Ok(mut subscriber) => {
                if failures > 0 {
                    tracing::info!(handler = %worker.scope.handler, destination = %worker.scope.destination, "resubscribed");
                }
                failures = 0;
                up.set(true);
                let end = Consume::consume(&worker, &mut subscriber, &intake).await;
                up.set(false);
                match end {
                    End::Intake => return,
                    End::Ended => tracing::warn!(
                        handler = %worker.scope.handler,
                        destination = %worker.scope.destination,
                        "the subscription ended unexpectedly; subscribing again"
                    ),
                    End::Failed(error) => tracing::warn!(
                        handler = %worker.scope.handler,
                        destination = %worker.scope.destination,
                        %error,
                        "the subscription failed; subscribing again"
                    ),
                }
            }
            Err(error) => tracing::warn!(
                handler = %worker.scope.handler,
                destination = %worker.scope.destination,
                %error,
                attempt = failures + 1,
                "subscribing failed; trying again"
            ),
        }
        failures = failures.saturating_add(1);
        tokio::select! {
            biased;
            () = intake.cancelled() => return,
            () = tokio::time::sleep(RESUBSCRIBE.delay(failures)) => {}
        }
    }
}

/// The next item of `stream`, or `None` once intake stops. `stopped` is the intake's
/// [`cancelled`](Intake::cancelled) future, made once per loop rather than per message: a
/// busy subscription pays one atomic load for the stop check and builds nothing.
pub(crate) fn next_or_stop<'s, 'c, St: Stream + ?Sized>(
    stream: Pin<&'s mut St>,
    intake: &'s Intake,
    stopped: Pin<&'s mut WaitForCancellationFuture<'c>>,
) -> NextOrStop<'s, 'c, St> {
    NextOrStop {
        stream,
        intake,
        stopped,
    }
}

/// The future of [`next_or_stop`]: a named type rather than a `poll_fn`, so its poll can
/// be inlined into the consume loop (it runs once per message).
pub(crate) struct NextOrStop<'s, 'c, St: ?Sized> {
    stream: Pin<&'s mut St>,
    intake: &'s Intake,
    stopped: Pin<&'s mut WaitForCancellationFuture<'c>>,
}

impl<St: Stream + ?Sized> Future for NextOrStop<'_, '_, St> {
    type Output = Option<Option<St::Item>>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        poll_next_or_stop(this.stream.as_mut(), this.intake, this.stopped.as_mut(), cx)
    }
}

pin_project_lite::pin_project! {
    /// A handler future with each poll's panic caught, as `futures`' `catch_unwind`, but
    /// a type whose poll is inlined into the consume loop (it runs once per message).
    pub(crate) struct Caught<F> {
        #[pin]
        future: F,
    }
}

impl<F> Caught<F> {
    pub(crate) fn new(future: F) -> Self {
        Self { future }
    }
}

impl<F: Future> Future for Caught<F> {
    type Output = std::thread::Result<F::Output>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = self.project().future;
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// One poll of [`next_or_stop`].
#[inline(always)]
fn poll_next_or_stop<St: Stream + ?Sized>(
    stream: Pin<&mut St>,
    intake: &Intake,
    stopped: Pin<&mut WaitForCancellationFuture<'_>>,
    cx: &mut Context<'_>,
) -> Poll<Option<Option<St::Item>>> {
    if intake.is_cancelled() {
        return Poll::Ready(None);
    }
    if let Poll::Ready(item) = stream.poll_next(cx) {
        return Poll::Ready(Some(item));
    }
    stopped.poll(cx).map(|()| None)
}

/// Up to this many workers share their stream by polling all of them at each wake-up;
/// more take turns through an async lock, so a wake-up costs the same for any number.
const POLL_ALL_UP_TO: usize = 30;

/// A stream shared by the workers of one subscription, all polled by one task.
trait SharedStream: Sync {
    type Item;

    /// Whether every worker is polled at each wake-up ([`join_workers`]) rather than only
    /// the woken ones (`join_all`).
    const POLL_ALL: bool;

    /// The next item, or `None` once `stop` is cancelled (see [`next_or_stop`]).
    fn next<'a>(
        &'a self,
        stop: &'a Intake,
        stopped: Pin<&'a mut WaitForCancellationFuture<'_>>,
    ) -> impl Future<Output = Option<Option<Self::Item>>> + Send + 'a;
}

/// Every worker is polled at each wake-up: the stream keeps one waker, the task's, so a
/// lock held within one poll is enough and costs next to nothing.
struct Polled<'s, St: ?Sized>(parking_lot::Mutex<Pin<&'s mut St>>);

/// Workers are polled only when woken (`join_all` of many futures): a worker waits for
/// the stream holding an async lock, whose release wakes the next one.
struct Locked<'s, St: ?Sized>(futures::lock::Mutex<Pin<&'s mut St>>);

impl<St: Stream + Send + ?Sized> SharedStream for Polled<'_, St>
where
    St::Item: Send,
{
    type Item = St::Item;
    const POLL_ALL: bool = true;

    fn next<'a>(
        &'a self,
        stop: &'a Intake,
        stopped: Pin<&'a mut WaitForCancellationFuture<'_>>,
    ) -> impl Future<Output = Option<Option<St::Item>>> + Send + 'a {
        PolledNext {
            stream: &self.0,
            stop,
            stopped,
        }
    }
}

/// The future of [`Polled::next`]: a named type, so its poll is inlined into the worker's
/// loop (it runs once per message).
struct PolledNext<'a, 's, 'c, St: ?Sized> {
    stream: &'a parking_lot::Mutex<Pin<&'s mut St>>,
    stop: &'a Intake,
    stopped: Pin<&'a mut WaitForCancellationFuture<'c>>,
}

impl<St: Stream + ?Sized> Future for PolledNext<'_, '_, '_, St> {
    type Output = Option<Option<St::Item>>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut stream = this.stream.lock();
        poll_next_or_stop(stream.as_mut(), this.stop, this.stopped.as_mut(), cx)
    }
}

impl<St: Stream + Send + ?Sized> SharedStream for Locked<'_, St>
where
    St::Item: Send,
{
    type Item = St::Item;
    const POLL_ALL: bool = false;

    async fn next<'a>(
        &'a self,
        stop: &'a Intake,
        stopped: Pin<&'a mut WaitForCancellationFuture<'_>>,
    ) -> Option<Option<St::Item>> {
        let mut stream = self.0.lock().await;
        next_or_stop(stream.as_mut(), stop, stopped).await
    }
}

/// Runs `workers` to completion, polling every one at each wake-up, as `join_all` does
/// for a few futures: idle workers take turns at one shared stream, which keeps one
/// waker, and one wake-up reaches them all. Boxed once per subscription, never per
/// message.
async fn join_workers<F: Future>(workers: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut workers: Vec<Pin<Box<MaybeDone<F>>>> =
        workers.map(|worker| Box::pin(maybe_done(worker))).collect();
    poll_fn(|cx| {
        let mut pending = false;
        for worker in &mut workers {
            pending |= worker.as_mut().poll(cx).is_pending();
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    workers
        .iter_mut()
        .filter_map(|worker| worker.as_mut().take_output())
        .collect()
}

/// Handles one message where the loop is, so the common path (call the handler, ack)
/// adds no future of its own between the loop's and the handler's. The ack repeats
/// `Worker::ack_only` on purpose: awaiting that `async fn` here measured 34
/// instructions more per message.
macro_rules! process {
    // `$message` is the binding itself, not rebound: a rebinding is a move of the
    // message in the loop's state.
    ($worker:expr, $message:ident, $slot:expr) => {{
        if $worker.plain(&$message) {
            match $worker.call_handler(&$message, &mut $slot.reply).await {
                ack @ Ok(Outcome(Kind::Settle(HandlerResult::Ack))) => {
                    // An ack owns nothing: skip the outcome's drop glue, a tenth of the
                    // loop's own cost.
                    std::mem::forget(ack);
                    if let Err(unsettled) = $message.ack_now()
                        && let Err(error) = unsettled.ack().await
                    {
                        $worker.ack_failed(&error);
                    }
                }
                outcome => $worker.conclude($message, outcome, $slot).await,
            }
        } else {
            $worker.process_in_full($message, $slot).await
        }
    }};
}

/// How a worker reads its subscription: message by message, or in batches.
pub(crate) trait Consume<Sub: Subscriber>: Send + Sync {
    fn consume<'a>(
        &'a self,
        subscriber: &'a mut Sub,
        intake: &'a Intake,
    ) -> impl Future<Output = End<Sub::Error>> + Send + 'a;
}

impl<B: RuntimeBroker, H: Handler, Sub: Subscriber> Consume<Sub> for Worker<B, H> {
    fn consume<'a>(
        &'a self,
        subscriber: &'a mut Sub,
        intake: &'a Intake,
    ) -> impl Future<Output = End<Sub::Error>> + Send + 'a {
        self.consume_messages(subscriber, intake)
    }
}

impl<B: RuntimeBroker, H: Handler> Worker<B, H> {
    async fn consume_messages<Sub: Subscriber>(
        &self,
        subscriber: &mut Sub,
        intake: &Intake,
    ) -> End<Sub::Error> {
        let stream = subscriber.stream();
        if self.options.workers <= 1 {
            self.consume_serial(stream, intake).await
        } else if self.options.by_key {
            self.consume_by_key(stream, intake).await
        } else {
            self.consume_concurrent(stream, intake).await
        }
    }

    async fn consume_serial<M, E, St>(&self, stream: St, intake: &Intake) -> End<E>
    where
        M: IncomingMessage,
        St: Stream<Item = Result<M, E>>,
    {
        let mut stream = pin!(stream);
        let mut stopped = pin!(intake.cancelled());
        let mut slot = Slot::new(self.scope.format);
        loop {
            match next_or_stop(stream.as_mut(), intake, stopped.as_mut()).await {
                None => return End::Intake,
                Some(None) => return End::Ended,
                Some(Some(Err(error))) => return End::Failed(error),
                Some(Some(Ok(message))) => process!(self, message, &mut slot),
            }
        }
    }

    /// `n` workers share the stream: one waits for the next message while the others
    /// handle theirs.
    async fn consume_concurrent<M, E, St>(&self, stream: St, intake: &Intake) -> End<E>
    where
        M: IncomingMessage,
        St: Stream<Item = Result<M, E>> + Send,
        E: Send,
    {
        let stream = pin!(stream);
        if self.options.workers <= POLL_ALL_UP_TO {
            self.run_workers(&Polled(parking_lot::Mutex::new(stream)), intake)
                .await
        } else {
            self.run_workers(&Locked(futures::lock::Mutex::new(stream)), intake)
                .await
        }
    }

    async fn run_workers<M, E, S>(&self, stream: &S, intake: &Intake) -> End<E>
    where
        M: IncomingMessage,
        S: SharedStream<Item = Result<M, E>>,
    {
        let stop = intake.child();
        let workers = (0..self.options.workers).map(|_| async {
            let mut slot = Slot::new(self.scope.format);
            let mut stopped = pin!(stop.cancelled());
            loop {
                let end = match stream.next(&stop, stopped.as_mut()).await {
                    None => return End::Intake,
                    Some(Some(Ok(message))) => {
                        process!(self, message, &mut slot);
                        continue;
                    }
                    Some(None) => End::Ended,
                    Some(Some(Err(error))) => End::Failed(error),
                };
                stop.cancel();
                return end;
            }
        });
        let ends = if S::POLL_ALL {
            join_workers(workers).await
        } else {
            futures::future::join_all(workers).await
        };
        if intake.is_cancelled() {
            return End::Intake;
        }
        ends.into_iter()
            .find(|end| !matches!(end, End::Intake))
            .unwrap_or(End::Intake)
    }

    /// A dispatcher feeds `n` lanes; a key always maps to the same lane, so its messages
    /// are handled in order.
    async fn consume_by_key<M, E, St>(&self, stream: St, intake: &Intake) -> End<E>
    where
        M: IncomingMessage,
        St: Stream<Item = Result<M, E>>,
    {
        let lanes = self.options.workers;
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..lanes)
            .map(|_| tokio::sync::mpsc::channel::<M>(1))
            .unzip();
        let dispatcher = async move {
            let mut stream = pin!(stream);
            let mut stopped = pin!(intake.cancelled());
            let mut next_keyless = 0usize;
            let hasher = BuildHasherDefault::<DefaultHasher>::default();
            loop {
                let message = match next_or_stop(stream.as_mut(), intake, stopped.as_mut()).await {
                    None => return End::Intake,
                    Some(None) => return End::Ended,
                    Some(Some(Err(error))) => return End::Failed(error),
                    Some(Some(Ok(message))) => message,
                };
                let lane = match message.partition_key() {
                    Some(key) => (hasher.hash_one(key) % lanes as u64) as usize,
                    None => {
                        next_keyless = (next_keyless + 1) % lanes;
                        next_keyless
                    }
                };
                // A lane only goes away once intake stops; the message is then left
                // unsettled for the broker to redeliver.
                if senders[lane].send(message).await.is_err() {
                    return End::Intake;
                }
            }
        };
        let lanes = receivers.into_iter().map(|mut receiver| async move {
            let mut slot = Slot::new(self.scope.format);
            while let Some(message) = receiver.recv().await {
                if intake.is_cancelled() {
                    continue; // dropped unsettled: redelivered by the broker
                }
                process!(self, message, &mut slot);
            }
        });
        let (end, _) = futures::future::join(dispatcher, futures::future::join_all(lanes)).await;
        end
    }

    /// Whether `message` takes the common path: no header to look at, nobody observing,
    /// no span (it is `debug`; with the usual `info` logging one load and compare skip it).
    #[inline]
    fn plain<M: IncomingMessage>(&self, message: &M) -> bool {
        message.headers().is_empty()
            && self.observers.is_empty()
            && !tracing::level_enabled!(tracing::Level::DEBUG)
    }

    /// The handler's call on `message`, a panic caught. A plain function returning the
    /// future, so the hot path gets no extra state machine.
    fn call_handler<'a, M: IncomingMessage>(
        &'a self,
        message: &'a M,
        reply: &'a mut ReplyBuffer,
    ) -> impl Future<Output = std::thread::Result<Outcome>> + 'a {
        Caught::new(self.handler.call(Message::of(message, &self.scope), reply))
    }

    /// The full path: observers and the span.
    async fn process_in_full<M: IncomingMessage>(&self, message: M, slot: &mut Slot) {
        let span = spans::process(&self.scope, &message);
        // Without a subscriber for it, the span is not entered at every poll.
        if span.is_disabled() {
            self.handle(message, slot).await;
        } else {
            self.handle(message, slot).instrument(span).await;
        }
    }

    /// Calls the handler and settles the message, inside the delivery's span.
    async fn handle<M: IncomingMessage>(&self, message: M, slot: &mut Slot) {
        let observed = (!self.observers.is_empty()).then(|| {
            self.observers.received(&Message::of(&message, &self.scope));
            Instant::now()
        });
        let outcome = self.call_handler(&message, &mut slot.reply).await;
        if let Some(started) = observed {
            let view = Message::of(&message, &self.scope);
            let elapsed = started.elapsed();
            match &outcome {
                Ok(Outcome(Kind::Failed(error))) => {
                    self.observers
                        .handled(&view, Handled::Failed(error.as_ref()), elapsed)
                }
                Ok(Outcome(Kind::Rejected(rejection))) => {
                    self.observers
                        .handled(&view, Handled::Rejected(rejection), elapsed)
                }
                Ok(_) => self.observers.handled(&view, Handled::Completed, elapsed),
                Err(panic) => self.observers.handled(
                    &view,
                    Handled::Panicked(&panic_reason(panic.as_ref())),
                    elapsed,
                ),
            }
        }
        self.conclude(message, outcome, slot).await;
    }

    /// Settles the message by what the handler call came to.
    async fn conclude<M: IncomingMessage>(
        &self,
        message: M,
        mut outcome: std::thread::Result<Outcome>,
        slot: &mut Slot,
    ) {
        let mut calls = 1;
        while let Some(delay) = self.in_place_delay(&outcome, calls) {
            tracing::warn!(handler = %self.scope.handler, destination = %self.scope.destination, attempt = calls, ?delay, "the handler failed; calling it again in place");
            tokio::select! {
                biased;
                () = self.intake.cancelled() => {
                    return self.observe(&message, Settlement::LeftUnsettled);
                }
                () = tokio::time::sleep(delay) => {}
            }
            calls += 1;
            outcome = self.call_handler(&message, &mut slot.reply).await;
        }
        match outcome {
            // The common case, settled without going through the policy machinery (the
            // futures of `settle` and `ack`).
            Ok(Outcome(Kind::Settle(HandlerResult::Ack))) => {
                self.observe(&message, Settlement::Acked);
                self.ack_only(message).await;
            }
            Ok(outcome) => self.settle(message, outcome.0, slot).await,
            Err(panic) => {
                let reason = panic_reason(panic.as_ref());
                tracing::error!(handler = %self.scope.handler, destination = %self.scope.destination, panic = %reason, "the handler panicked");
                let policy = self.options.failures.panic_policy();
                self.fail(message, &format!("the handler panicked: {reason}"), policy)
                    .await;
            }
        }
    }

    /// How long to wait before calling the handler again in place, if the failure's
    /// policy is [`FailurePolicy::RetryInPlace`] with calls left after `calls`.
    fn in_place_delay(
        &self,
        outcome: &std::thread::Result<Outcome>,
        calls: u32,
    ) -> Option<Duration> {
        let failures = &self.options.failures;
        let policy = match outcome {
            Ok(Outcome(Kind::Failed(_))) => failures.on_error.clone(),
            Ok(Outcome(Kind::Rejected(_))) => failures.decode_policy(),
            Err(_) => failures.panic_policy(),
            Ok(_) => return None,
        };
        match policy {
            FailurePolicy::RetryInPlace { attempts, backoff } if calls < attempts => {
                Some(backoff.delay(calls))
            }
            _ => None,
        }
    }
}

/// Settlement: shared by message and batch handlers.
impl<B: RuntimeBroker, H: Send + Sync> Worker<B, H> {
    pub(crate) async fn settle<M: IncomingMessage>(
        &self,
        message: M,
        outcome: Kind,
        slot: &mut Slot,
    ) {
        match outcome {
            Kind::Settle(HandlerResult::Ack) => self.ack(message).await,
            Kind::Settle(HandlerResult::Retry) => {
                self.retry(message, None, "the handler asked for a retry")
                    .await
            }
            Kind::Settle(HandlerResult::RetryAfter(delay)) => {
                self.retry(message, Some(delay), "the handler asked for a retry")
                    .await;
            }
            Kind::Settle(HandlerResult::Drop) => self.drop_message(message).await,
            Kind::Reply => match self.publish_reply(&message, slot).await {
                Ok(()) => self.ack(message).await,
                Err(error) => {
                    tracing::warn!(handler = %self.scope.handler, %error, "publishing the reply failed");
                    let policy = self.options.failures.on_error.clone();
                    self.fail(
                        message,
                        &format!("publishing the reply failed: {error}"),
                        policy,
                    )
                    .await;
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
        }
    }

    pub(crate) async fn fail<M: IncomingMessage>(
        &self,
        message: M,
        reason: &str,
        policy: FailurePolicy,
    ) {
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
                self.observe(&message, Settlement::LeftUnsettled);
                drop(message);
            }
        }
    }

    /// Hands the message back to the broker for another attempt, `delay` from now: its
    /// `nack_after`, or `nack(true)`. The broker holds it meanwhile; no worker waits.
    async fn retry<M: IncomingMessage>(&self, message: M, delay: Option<Duration>, reason: &str) {
        let attempt = attempt_of(message.redelivery_count());
        if let Some(max) = self.options.failures.max_attempts
            && attempt >= max
        {
            return self.give_up(message, reason, attempt).await;
        }
        self.hand_back(message, delay, reason).await;
    }

    /// `nack_after(delay)`, or `nack(true)` without a delay.
    async fn hand_back<M: IncomingMessage>(
        &self,
        message: M,
        delay: Option<Duration>,
        reason: &str,
    ) {
        // Observed before settling, by what the subscription says it can do: once
        // settled, the message may already be redelivered to another worker.
        if self.scope.capabilities.requeue {
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
            Err(crate::AckError::Unsupported(_)) if !self.scope.capabilities.requeue => {}
            Err(crate::AckError::Unsupported(what)) => {
                tracing::warn!(handler = %self.scope.handler, destination = %self.scope.destination, "the subscription states it can requeue, but its broker cannot {what}: the message will not come back");
            }
            Err(error) => {
                tracing::warn!(handler = %self.scope.handler, %error, "asking for redelivery failed; the broker will redeliver");
            }
        }
    }

    /// Hands the message back for immediate redelivery, where publishing it elsewhere
    /// failed.
    async fn requeue<M: IncomingMessage>(&self, message: M) {
        self.hand_back(message, None, "publishing it failed").await;
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
                self.observe(&message, Settlement::DeadLettered);
                self.ack_only(message).await;
            }
            Err(error) => {
                tracing::error!(handler = %self.scope.handler, %destination, %error, "dead-lettering failed; leaving the message to the broker");
                self.requeue(message).await;
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
        self.observers.published(&Publication {
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

    async fn ack<M: IncomingMessage>(&self, message: M) {
        self.observe(&message, Settlement::Acked);
        self.ack_only(message).await;
    }

    async fn ack_only<M: IncomingMessage>(&self, message: M) {
        if let Err(message) = message.ack_now()
            && let Err(error) = message.ack().await
        {
            self.ack_failed(&error);
        }
    }

    #[cold]
    fn ack_failed(&self, error: &crate::AckError) {
        tracing::warn!(handler = %self.scope.handler, %error, "the ack failed; the broker may redeliver the message");
    }

    async fn drop_message<M: IncomingMessage>(&self, message: M) {
        self.observe(&message, Settlement::Rejected);
        if let Err(error) = message.nack(false).await {
            tracing::warn!(handler = %self.scope.handler, %error, "rejecting the message failed; the broker may redeliver it");
        }
    }
}

pub(crate) fn panic_reason(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a non-text panic payload".to_owned()
    }
}
