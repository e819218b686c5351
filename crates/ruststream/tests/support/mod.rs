//! Helpers shared by the runtime tests: a broker wrapper that logs what the runtime does
//! to it, a gate for handlers that must wait, an in-flight gauge, a synchronous handler
//! that sees the whole message, and a capture of the runtime's log.
#![allow(dead_code, unreachable_pub)]

use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use ruststream::runtime::{ATTEMPT_HEADER, Handler, Message, Outcome, ReplyBuffer, Settle};
use ruststream::testing::{Quiescence, TestBroker};
use ruststream::{
    AckError, Broker, Headers, IncomingMessage, OutgoingMessage, Publisher, Reply, RequestReply,
    Subscribe, Subscriber, SubscriptionSource,
};
use tokio::sync::Semaphore;

/// How long the helpers wait for a condition before failing the test.
pub const WAIT: Duration = Duration::from_secs(5);

/// Waits until `check` holds, yielding and ticking in between; fails after [`WAIT`].
#[track_caller]
pub fn eventually(what: &str, check: impl Fn() -> bool) -> impl Future<Output = ()> {
    let caller = std::panic::Location::caller();
    let what = what.to_owned();
    async move {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !check() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{caller}: still waiting after {WAIT:?} for: {what}"
            );
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// The next message of `subscriber`; fails after [`WAIT`] or if the stream ends or errs.
#[track_caller]
pub fn next_within<S: ruststream::Subscriber>(
    subscriber: &mut S,
) -> impl Future<Output = S::Message> + '_ {
    use ruststream::SubscriberExt as _;
    let caller = std::panic::Location::caller();
    async move {
        match tokio::time::timeout(WAIT, subscriber.next_message()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(error))) => panic!("{caller}: the subscription failed: {error}"),
            Ok(None) => panic!("{caller}: the subscription ended"),
            Err(_) => panic!("{caller}: no message within {WAIT:?}"),
        }
    }
}

/// Why a dead-lettered message was dead-lettered (its reason header).
#[track_caller]
pub fn dead_letter_reason<M: ruststream::IncomingMessage>(letter: &M) -> String {
    letter
        .headers()
        .get_str(ruststream::runtime::DEAD_LETTER_REASON_HEADER)
        .expect("a dead letter carries its reason")
        .to_owned()
}

/// A shared, ordered log of lines.
#[derive(Debug, Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn push(&self, line: impl Into<String>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line.into());
    }

    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The lines that start with `prefix`.
    pub fn starting_with(&self, prefix: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|line| line.starts_with(prefix))
            .collect()
    }

    /// The position of the first line that contains every one of `parts`.
    #[track_caller]
    pub fn position(&self, parts: &[&str]) -> usize {
        let lines = self.lines();
        lines
            .iter()
            .position(|line| parts.iter().all(|part| line.contains(part)))
            .unwrap_or_else(|| panic!("no log line contains {parts:?} in {lines:#?}"))
    }
}

/// A broker wrapper that logs what the runtime does to it: connects, shutdowns,
/// subscribes, publishes (with the runtime's retry headers) and each settlement.
#[derive(Debug, Clone)]
pub struct Spy<B> {
    pub inner: B,
    label: &'static str,
    log: Log,
    live: bool,
    refuse_connect: bool,
    failing_acks: bool,
    subscribes: Arc<AtomicUsize>,
}

impl<B> Spy<B> {
    pub fn new(label: &'static str, inner: B, log: &Log) -> Self {
        Self {
            inner,
            label,
            log: log.clone(),
            live: false,
            refuse_connect: false,
            failing_acks: false,
            subscribes: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Pretends to be a live broker: `TestApp` waits by message id, not by backlog.
    pub fn live(mut self) -> Self {
        self.live = true;
        self
    }

    /// Fails every `connect`.
    pub fn refusing_connect(mut self) -> Self {
        self.refuse_connect = true;
        self
    }

    /// Answers every ack with a refusal, as a broker that confirms acks may (the
    /// message is dropped underneath).
    pub fn failing_acks(mut self) -> Self {
        self.failing_acks = true;
        self
    }

    /// Subscribe calls so far, failed ones included.
    pub fn subscribes(&self) -> usize {
        self.subscribes.load(Ordering::SeqCst)
    }
}

/// Renders the runtime's own headers of a message for the log.
fn retry_headers(headers: &Headers) -> String {
    let mut out = String::new();
    for (name, short) in [(ATTEMPT_HEADER, "attempt")] {
        if let Some(value) = headers.get_str(name) {
            let _ = write!(out, " {short}={value}");
        }
    }
    out
}

#[derive(Debug, thiserror::Error)]
#[error("connection refused (a test spy)")]
pub struct Refused;

#[derive(Debug, thiserror::Error)]
pub enum SpyError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Inner(E),
    #[error(transparent)]
    Refused(Refused),
}

impl<B: Broker> Broker for Spy<B> {
    type Error = SpyError<B::Error>;

    async fn connect(&self) -> Result<(), Self::Error> {
        if self.refuse_connect {
            self.log.push(format!("connect {} refused", self.label));
            return Err(SpyError::Refused(Refused));
        }
        self.log.push(format!("connect {}", self.label));
        self.inner.connect().await.map_err(SpyError::Inner)
    }

    async fn shutdown(&self) -> Result<(), Self::Error> {
        self.log.push(format!("shutdown {}", self.label));
        self.inner.shutdown().await.map_err(SpyError::Inner)
    }

    fn server(&self) -> Option<ruststream::ServerSpec> {
        self.inner.server()
    }
}

impl<B: Broker> Spy<B> {
    /// Counts and logs a subscribe, wrapping the subscriber.
    fn subscribed<S>(
        &self,
        name: &str,
        result: Result<S, B::Error>,
    ) -> Result<SpySubscriber<S>, SpyError<B::Error>> {
        self.subscribes.fetch_add(1, Ordering::SeqCst);
        self.log.push(format!(
            "subscribe {} {name} {}",
            self.label,
            if result.is_ok() { "ok" } else { "failed" }
        ));
        Ok(SpySubscriber {
            inner: result.map_err(SpyError::Inner)?,
            label: self.label,
            log: self.log.clone(),
            failing_acks: self.failing_acks,
        })
    }
}

impl<B: Subscribe> Subscribe for Spy<B> {
    type Subscriber = SpySubscriber<B::Subscriber>;

    async fn subscribe(&self, name: &str) -> Result<Self::Subscriber, Self::Error> {
        let result = self.inner.subscribe(name).await;
        self.subscribed(name, result)
    }
}

/// A broker's own source (a `MemorySource` with its group...) used through a [`Spy`].
#[derive(Debug, Clone)]
pub struct Via<S>(pub S);

impl<B, S> SubscriptionSource<Spy<B>> for Via<S>
where
    B: Broker,
    S: SubscriptionSource<B> + Send,
{
    type Subscriber = SpySubscriber<S::Subscriber>;

    fn name(&self) -> &str {
        self.0.name()
    }

    async fn subscribe(self, broker: &Spy<B>) -> Result<Self::Subscriber, SpyError<B::Error>> {
        let name = self.0.name().to_owned();
        let result = self.0.subscribe(&broker.inner).await;
        broker.subscribed(&name, result)
    }

    fn with_prefix(self, prefix: &str) -> Result<Self, Self> {
        self.0.with_prefix(prefix).map(Via).map_err(Via)
    }
}

impl<B: Publisher> Publisher for Spy<B> {
    type Error = B::Error;

    async fn publish(&self, msg: OutgoingMessage<'_>) -> Result<(), B::Error> {
        self.log.push(format!(
            "publish {} {}{}",
            self.label,
            msg.name(),
            retry_headers(msg.headers())
        ));
        self.inner.publish(msg).await
    }
}

impl<B: RequestReply> RequestReply for Spy<B> {
    async fn request(
        &self,
        msg: OutgoingMessage<'_>,
        timeout: Duration,
    ) -> Result<Reply, B::Error> {
        self.inner.request(msg, timeout).await
    }
}

impl<B: ruststream::DescribeServer + Broker> ruststream::DescribeServer for Spy<B> {
    fn describe_server(&self) -> ruststream::ServerSpec {
        self.inner.describe_server()
    }
}

impl<B: TestBroker> TestBroker for Spy<B> {
    fn quiescence(&self) -> Quiescence {
        if self.live {
            Quiescence::MessageIds
        } else {
            self.inner.quiescence()
        }
    }
}

pub struct SpySubscriber<S> {
    inner: S,
    label: &'static str,
    log: Log,
    failing_acks: bool,
}

impl<S: Subscriber> Subscriber for SpySubscriber<S> {
    type Message = SpyMessage<S::Message>;
    type Error = S::Error;

    fn capabilities(&self) -> ruststream::Capabilities {
        self.inner.capabilities()
    }

    fn stream(&mut self) -> impl Stream<Item = Result<Self::Message, S::Error>> + Send + '_ {
        let label = self.label;
        let log = self.log.clone();
        let failing_acks = self.failing_acks;
        self.inner.stream().map(move |message| {
            message.map(|inner| SpyMessage {
                inner,
                label,
                log: log.clone(),
                failing_acks,
            })
        })
    }
}

pub struct SpyMessage<M> {
    inner: M,
    label: &'static str,
    log: Log,
    failing_acks: bool,
}

impl<M: IncomingMessage> SpyMessage<M> {
    fn settle(&self, how: &str) {
        self.log.push(format!(
            "{how} {} {}{}",
            self.label,
            self.inner.name().unwrap_or("?"),
            retry_headers(self.inner.headers())
        ));
    }
}

impl<M: IncomingMessage> IncomingMessage for SpyMessage<M> {
    fn payload(&self) -> &[u8] {
        self.inner.payload()
    }

    fn headers(&self) -> &Headers {
        self.inner.headers()
    }

    async fn ack(self) -> Result<(), AckError> {
        self.settle("ack");
        if self.failing_acks {
            let _ = self.inner.nack(false).await;
            return Err(AckError::Rejected("the spy refuses acks".to_owned()));
        }
        self.inner.ack().await
    }

    async fn nack(self, requeue: bool) -> Result<(), AckError> {
        self.settle(if requeue { "nack-requeue" } else { "nack-drop" });
        self.inner.nack(requeue).await
    }

    async fn nack_after(self, delay: Duration) -> Result<(), AckError> {
        self.settle(&format!("nack-after-{}ms", delay.as_millis()));
        self.inner.nack_after(delay).await
    }

    fn partition_key(&self) -> Option<&[u8]> {
        self.inner.partition_key()
    }

    fn name(&self) -> Option<&str> {
        self.inner.name()
    }

    fn reply_to(&self) -> Option<&str> {
        self.inner.reply_to()
    }

    fn redelivery_count(&self) -> Option<u32> {
        self.inner.redelivery_count()
    }
}

/// A handler that decides synchronously from the whole delivered message (its attempt,
/// headers, payload...): what `#[subscriber]` handlers taking a `Message` do.
pub fn inspect<F>(decide: F) -> Inspect<F>
where
    F: Fn(&Message<'_>) -> Settle + Send + Sync + 'static,
{
    Inspect(decide)
}

pub struct Inspect<F>(F);

impl<F> Handler for Inspect<F>
where
    F: Fn(&Message<'_>) -> Settle + Send + Sync + 'static,
{
    fn call<'a>(
        &'a self,
        message: Message<'a>,
        _reply: &'a mut ReplyBuffer,
    ) -> impl Future<Output = Outcome> + Send + 'a {
        std::future::ready(Outcome::settle((self.0)(&message)))
    }
}

/// Holds handlers until the test lets them through, one permit each.
#[derive(Debug, Clone)]
pub struct Gate(Arc<Semaphore>);

impl Default for Gate {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(0)))
    }
}

impl Gate {
    pub async fn pass(&self) {
        self.0
            .acquire()
            .await
            .expect("the gate is never closed")
            .forget();
    }

    pub fn open(&self, permits: usize) {
        self.0.add_permits(permits);
    }
}

/// Counts what is in flight and remembers the most there ever was.
#[derive(Debug, Default)]
pub struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Gauge {
    pub fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
    }

    pub fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    pub fn now(&self) -> usize {
        self.now.load(Ordering::SeqCst)
    }

    pub fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

/// Captures the runtime's log events (message and fields, one line each) on the current
/// thread: use it in a current-thread test, where the app's tasks run on this thread.
#[derive(Debug, Clone, Default)]
pub struct LogCapture(Log);

impl LogCapture {
    /// Captures until the guard drops.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(CaptureSubscriber(self.0.clone()))
    }

    pub fn lines(&self) -> Vec<String> {
        self.0.lines()
    }

    pub fn count(&self, text: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(text)).count()
    }
}

struct CaptureSubscriber(Log);

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl tracing::Subscriber for CaptureSubscriber {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(format!("{} ", event.metadata().level()));
        event.record(&mut fields);
        self.0.push(fields.0);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// A flag a test sets once.
#[derive(Debug, Clone, Default)]
pub struct Flag(Arc<AtomicBool>);

impl Flag {
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
