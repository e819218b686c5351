//! [`TestApp`]: the service's own [`App`] run in process, driven and watched by a test.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use super::TestClient;
use super::record::{Ended, Published, Received};
use crate::headers::MESSAGE_ID;
use crate::memory::MemoryBroker;
use crate::runtime::{
    App, AppError, Format, Handled, Message, Observer, Producer, PublishAttempt, RunningApp,
    RuntimeBroker, Settlement,
};
use crate::{BoxError, Headers, OutgoingMessage, RequestReply, Subscribe};

/// How long a publish through a [`TestApp`] waits for the handlers to settle by default.
pub const DEFAULT_SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the settle check runs when no observer event wakes it.
const TICK: Duration = Duration::from_millis(1);

/// Yields before each settle check, so that spawned work that is ready runs first.
const YIELDS: usize = 4;

/// How a [`TestApp`] tells that a broker has nothing left for the app's handlers: the
/// strategy a [`TestBroker`] chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Quiescence {
    /// The broker counts the messages it holds that no handler has taken yet, ready or
    /// scheduled for a delayed redelivery (in-process brokers). Settled when this count
    /// is 0 and every message a handler received has been settled.
    Backlog(usize),
    /// The broker cannot count (a live broker). Settled when every message published
    /// through the [`TestApp`] has been settled by a handler (found by the `message-id`
    /// header the test app sets), and every message a handler received has been settled.
    MessageIds,
}

/// A broker a [`TestApp`] can drive: it says how to tell that the handler chain has
/// settled.
///
/// [`MemoryBroker`] and [`TestClient`] count their backlog
/// ([`Quiescence::Backlog`]). A live broker crate implements this trait with the default
/// method, [`Quiescence::MessageIds`], and the same tests run against the real server.
///
/// `Subscribe` is required so that a test generic over the broker can mount subscribers
/// by plain name.
pub trait TestBroker: RuntimeBroker + Subscribe<Subscriber: 'static> {
    /// How to tell that the broker has nothing left for the handlers, asked again at each
    /// check.
    fn quiescence(&self) -> Quiescence {
        Quiescence::MessageIds
    }
}

impl TestBroker for MemoryBroker {
    fn quiescence(&self) -> Quiescence {
        Quiescence::Backlog(self.backlog())
    }
}

impl TestBroker for TestClient {
    fn quiescence(&self) -> Quiescence {
        Quiescence::Backlog(self.backlog())
    }
}

/// Why a [`TestApp`] publish or wait failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestAppError {
    /// The broker refused the publish, or the value did not encode.
    #[error("publishing to `{name}` failed: {source}")]
    Publish {
        /// The destination.
        name: String,
        /// Why.
        source: BoxError,
    },
    /// The request failed, timed out, or its reply did not decode.
    #[error("the request to `{name}` failed: {source}")]
    Request {
        /// The destination.
        name: String,
        /// Why.
        source: BoxError,
    },
    /// The handlers were still busy when the settle timeout ran out.
    #[error(
        "the handlers did not settle within {waited:?} ({pending}); raise the limit with `TestApp::with_timeout` if they are just slow"
    )]
    NotSettled {
        /// How long the test app waited.
        waited: Duration,
        /// What was still pending: messages received and not settled, retries not yet
        /// redelivered, broker backlogs, published messages not yet settled.
        pending: String,
    },
}

/// The service's own [`App`], run in process with an observer that records what each
/// handler received, how the call ended, how the message was settled, and what the app
/// published. Publishes from the test return once the handler chain has settled.
///
/// See the [module documentation](super) for an example and for how settling is told.
pub struct TestApp<B> {
    /// In a mutex only so that the test app is `Sync` (a running app is not): it is
    /// taken by value at shutdown, never locked across an await.
    running: Mutex<RunningApp>,
    broker: B,
    producer: Producer<B>,
    shared: Arc<Shared>,
    /// The brokers to wait for: the test's own, then the watched ones.
    brokers: Vec<Watched>,
    timeout: Duration,
    ids: IdSource,
}

/// A broker a test app waits for.
struct Watched {
    name: &'static str,
    quiescence: Box<dyn Fn() -> Quiescence + Send + Sync>,
}

impl Watched {
    fn new<B: TestBroker>(broker: B) -> Self {
        Self {
            name: std::any::type_name::<B>(),
            quiescence: Box::new(move || broker.quiescence()),
        }
    }
}

impl<B> std::fmt::Debug for TestApp<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp")
            .field(
                "app",
                &*self.running.lock().unwrap_or_else(PoisonError::into_inner),
            )
            .field("broker", &std::any::type_name::<B>())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<B: TestBroker> TestApp<B> {
    /// Installs the recording observer on `app` and starts it (startup hooks, brokers
    /// connected, subscriptions running, after-startup hooks).
    ///
    /// `broker` is the handle the test publishes through: a clone of the app's broker
    /// (clones share the connection the app opens), or another connection to the same
    /// server, which is connected here.
    pub async fn start(app: App, broker: B) -> Result<Self, AppError> {
        let shared = Arc::new(Shared::default());
        let running = app.observer(Recorder(Arc::clone(&shared))).start().await?;
        if let Err(error) = broker.connect().await {
            let _ = running.shutdown().await;
            return Err(AppError::Connect {
                broker: std::any::type_name::<B>(),
                source: error.into(),
            });
        }
        Ok(Self {
            running: Mutex::new(running),
            producer: Producer::new(broker.clone()),
            brokers: vec![Watched::new(broker.clone())],
            broker,
            shared,
            timeout: DEFAULT_SETTLE_TIMEOUT,
            ids: IdSource::new(),
        })
    }

    /// How long a publish (or [`settled`](Self::settled)) waits for the handlers before
    /// failing with [`TestAppError::NotSettled`] (default 5 s).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Encodes the test's publishes and decodes [`Published`] records with `format`
    /// (default JSON; set the app's format here if it uses another).
    #[must_use]
    pub fn with_format(mut self, format: impl Into<Format>) -> Self {
        let format = format.into();
        self.producer = self.producer.with_format(format);
        self.shared.lock().format = format;
        self
    }

    /// Waits for `other` too before saying the handlers have settled: the second broker of
    /// an app whose handlers publish across brokers.
    #[must_use]
    pub fn watch(mut self, other: impl TestBroker) -> Self {
        self.brokers.push(Watched::new(other));
        self
    }

    /// The broker the test publishes through.
    pub fn broker(&self) -> &B {
        &self.broker
    }

    /// A producer on the test's broker, for publishes with options (headers, partition
    /// key, reply-to), or for many messages at once. It does not wait: call
    /// [`settled`](Self::settled) after.
    pub fn producer(&self) -> &Producer<B> {
        &self.producer
    }

    /// Publishes `value` to `name`, then waits until the handler chain has settled.
    pub async fn publish<T: Serialize + ?Sized>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<(), TestAppError> {
        let id = self.ids.next(&self.shared);
        let sent = self
            .producer
            .message(name, value)
            .message_id(id.clone())
            .send()
            .await;
        if let Err(error) = sent {
            self.shared.forget(&id);
            return Err(TestAppError::Publish {
                name: name.to_owned(),
                source: error.into(),
            });
        }
        self.settled().await
    }

    /// Publishes `payload` with `headers` to `name` as is (no encoding, no content type),
    /// then waits until the handler chain has settled. A `message-id` header is added
    /// unless `headers` has one.
    pub async fn publish_raw(
        &self,
        name: &str,
        payload: impl AsRef<[u8]>,
        mut headers: Headers,
    ) -> Result<(), TestAppError> {
        let id = match headers.get_str(MESSAGE_ID) {
            Some(id) => {
                let id = id.to_owned();
                self.shared.lock().outstanding.insert(id.clone());
                id
            }
            None => {
                let id = self.ids.next(&self.shared);
                headers.insert(MESSAGE_ID, id.clone());
                id
            }
        };
        let message = OutgoingMessage::new(name, payload.as_ref()).with_headers(&headers);
        if let Err(error) = self.broker.publish(message).await {
            self.shared.forget(&id);
            return Err(TestAppError::Publish {
                name: name.to_owned(),
                source: error.into(),
            });
        }
        self.settled().await
    }

    /// Sends `value` to `name` as a request, decodes the reply as `R`, then waits until
    /// the handler chain has settled.
    pub async fn request<R: DeserializeOwned>(
        &self,
        name: &str,
        value: &(impl Serialize + ?Sized),
        timeout: Duration,
    ) -> Result<R, TestAppError>
    where
        B: RequestReply,
    {
        let id = self.ids.next(&self.shared);
        let reply = self
            .producer
            .message(name, value)
            .message_id(id.clone())
            .request(timeout)
            .await;
        if reply.is_err() {
            self.shared.forget(&id); // perhaps never delivered: do not wait for it
        }
        // Whether or not a reply came, let the handlers settle what they received.
        self.settled().await?;
        reply.map_err(|error| TestAppError::Request {
            name: name.to_owned(),
            source: error.into(),
        })
    }

    /// Waits until the handler chain has settled: every message a handler received is
    /// settled, every retry asked for has been delivered again, and each broker has
    /// nothing left for the handlers (see [`Quiescence`]). Fails with
    /// [`TestAppError::NotSettled`] after the timeout.
    ///
    /// The state must hold at two checks in a row with no observer event in between, and
    /// each check comes after yielding, so work that spawned tasks have ready runs first.
    pub async fn settled(&self) -> Result<(), TestAppError> {
        let started = tokio::time::Instant::now();
        let deadline = started + self.timeout;
        let mut quiet_since: Option<u64> = None;
        loop {
            let wake = self.shared.wake.notified();
            for _ in 0..YIELDS {
                tokio::task::yield_now().await;
            }
            match self.pending() {
                None if quiet_since == Some(self.shared.lock().events) => return Ok(()),
                None => quiet_since = Some(self.shared.lock().events),
                Some(pending) => {
                    quiet_since = None;
                    if tokio::time::Instant::now() >= deadline {
                        return Err(TestAppError::NotSettled {
                            waited: started.elapsed(),
                            pending,
                        });
                    }
                }
            }
            let _ = tokio::time::timeout(TICK, wake).await;
        }
    }

    /// What keeps the handler chain from being settled, or `None` when it is.
    fn pending(&self) -> Option<String> {
        let strategies: Vec<(&str, Quiescence)> = self
            .brokers
            .iter()
            .map(|broker| (broker.name, (broker.quiescence)()))
            .collect();
        let state = self.shared.lock();
        let mut pending = String::new();
        for open in &state.open {
            let received = &state.received[open.index];
            let _ = write!(
                pending,
                "handler `{}` has not settled attempt {} of {:?}; ",
                received.handler,
                received.attempt,
                String::from_utf8_lossy(&received.payload)
            );
        }
        for expected in &state.expected {
            let _ = write!(
                pending,
                "handler `{}` asked for a retry and has not received attempt {} yet; ",
                expected.handler, expected.attempt
            );
        }
        for (broker, strategy) in &strategies {
            match strategy {
                Quiescence::Backlog(0) => {}
                Quiescence::Backlog(waiting) => {
                    let _ = write!(
                        pending,
                        "`{broker}` holds {waiting} messages no handler has taken; "
                    );
                }
                Quiescence::MessageIds if state.outstanding.is_empty() => {}
                Quiescence::MessageIds => {
                    let mut ids: Vec<_> = state.outstanding.iter().map(String::as_str).collect();
                    ids.sort_unstable();
                    let _ = write!(
                        pending,
                        "no handler has settled the published messages {ids:?}; "
                    );
                }
            }
        }
        if pending.is_empty() {
            None
        } else {
            pending.truncate(pending.trim_end_matches("; ").len());
            Some(pending)
        }
    }

    /// Every delivery to `handler` so far, in order (a retried message once per attempt).
    pub fn received(&self, handler: &str) -> Vec<Received> {
        self.recording().received(handler)
    }

    /// How `handler`'s messages were settled so far, in order (see
    /// [`Recording::settlements`]).
    pub fn settlements(&self, handler: &str) -> Vec<Settlement> {
        self.recording().settlements(handler)
    }

    /// What the app published to `destination` so far, in order (see
    /// [`Recording::published`]).
    pub fn published(&self, destination: &str) -> Vec<Published> {
        self.recording().published(destination)
    }

    /// A handle on the records that stays readable after [`shutdown`](Self::shutdown), for
    /// assertions on what happened during the shutdown.
    pub fn recording(&self) -> Recording {
        Recording(Arc::clone(&self.shared))
    }

    /// Shuts the app down gracefully (see [`RunningApp::shutdown`]).
    pub async fn shutdown(self) -> Result<(), AppError> {
        let running = self
            .running
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        running.shutdown().await
    }
}

/// What a [`TestApp`] recorded: a cheap handle, readable while the app runs and after it
/// has shut down.
#[derive(Clone)]
pub struct Recording(Arc<Shared>);

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let records = self.0.lock();
        f.debug_struct("Recording")
            .field("received", &records.received.len())
            .field("settlements", &records.settlements.len())
            .field("published", &records.published.len())
            .finish()
    }
}

impl Recording {
    /// Every delivery to `handler` so far, in order (a retried message once per attempt).
    pub fn received(&self, handler: &str) -> Vec<Received> {
        self.0
            .lock()
            .received
            .iter()
            .filter(|received| received.handler == handler)
            .cloned()
            .collect()
    }

    /// How `handler`'s messages were settled so far, in order: one settlement per
    /// delivery.
    pub fn settlements(&self, handler: &str) -> Vec<Settlement> {
        self.0
            .lock()
            .settlements
            .iter()
            .filter(|(name, _)| name == handler)
            .map(|(_, settlement)| *settlement)
            .collect()
    }

    /// What the app published to `destination` so far, in order: replies,
    /// dead letters and handlers' publishes (not the test's own publishes).
    pub fn published(&self, destination: &str) -> Vec<Published> {
        self.0
            .lock()
            .published
            .iter()
            .filter(|published| published.destination == destination)
            .cloned()
            .collect()
    }
}

/// The `message-id`s of the test's publishes: unique within the process, and random
/// across runs so that a live broker's leftovers from an earlier run do not match.
#[derive(Debug)]
struct IdSource {
    run: u32,
    next: AtomicU64,
}

impl IdSource {
    fn new() -> Self {
        Self {
            run: fastrand::u32(..),
            next: AtomicU64::new(1),
        }
    }

    /// A fresh id, registered as waiting for its settlement before it is published.
    fn next(&self, shared: &Shared) -> String {
        let id = format!(
            "testapp-{:08x}-{}",
            self.run,
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        shared.lock().outstanding.insert(id.clone());
        id
    }
}

/// A delivery not yet settled.
#[derive(Debug)]
struct Open {
    /// Its record in `received`.
    index: usize,
    /// Where its payload lives: the runtime shows the same message to every observer call,
    /// so this tells concurrent deliveries of equal payloads apart.
    address: usize,
}

/// A redelivery a retry asked for.
#[derive(Debug, PartialEq)]
struct Attempt {
    handler: String,
    payload: Bytes,
    attempt: u32,
}

#[derive(Debug)]
struct Records {
    received: Vec<Received>,
    open: Vec<Open>,
    settlements: Vec<(String, Settlement)>,
    published: Vec<Published>,
    /// Retries not yet delivered again.
    expected: Vec<Attempt>,
    /// Redeliveries that arrived before their retry was recorded (taken by another
    /// worker before the runtime reported the settlement).
    early: Vec<Attempt>,
    /// `message-id`s published by the test and not yet settled by a handler.
    outstanding: HashSet<String>,
    /// Observer calls so far.
    events: u64,
    format: Format,
}

#[derive(Debug)]
struct Shared {
    records: Mutex<Records>,
    wake: Notify,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            records: Mutex::new(Records {
                received: Vec::new(),
                open: Vec::new(),
                settlements: Vec::new(),
                published: Vec::new(),
                expected: Vec::new(),
                early: Vec::new(),
                outstanding: HashSet::new(),
                events: 0,
                format: Format::Json,
            }),
            wake: Notify::new(),
        }
    }
}

impl Shared {
    /// Stops waiting for a message id (its publish failed).
    fn forget(&self, id: &str) {
        self.lock().outstanding.remove(id);
    }

    fn lock(&self) -> MutexGuard<'_, Records> {
        // A panic in a test thread while recording leaves consistent vectors; keep going.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records an observer event and wakes a waiting `settled`.
    fn record(&self, event: impl FnOnce(&mut Records)) {
        {
            let mut records = self.lock();
            records.events += 1;
            event(&mut records);
        }
        self.wake.notify_waiters();
    }
}

impl Records {
    /// The position in `open` of the delivery `message` is.
    fn find_open(&self, message: &Message<'_>) -> Option<usize> {
        let payload = message.payload();
        let address = payload.as_ptr() as usize;
        let by_address = self.open.iter().position(|open| {
            let received = &self.received[open.index];
            open.address == address
                && received.handler == message.handler()
                && received.payload.len() == payload.len()
        });
        by_address.or_else(|| {
            self.open.iter().position(|open| {
                let received = &self.received[open.index];
                received.handler == message.handler()
                    && received.payload == payload
                    && received.headers == *message.headers()
            })
        })
    }
}

/// The observer [`TestApp`] installs.
struct Recorder(Arc<Shared>);

impl Observer for Recorder {
    fn received(&self, message: &Message<'_>) {
        self.0.record(|records| {
            let attempt = Attempt {
                handler: message.handler().to_owned(),
                payload: Bytes::copy_from_slice(message.payload()),
                attempt: message.attempt(),
            };
            if attempt.attempt > 1 {
                match records.expected.iter().position(|e| *e == attempt) {
                    Some(found) => {
                        records.expected.swap_remove(found);
                    }
                    None => records.early.push(attempt),
                }
            }
            records.open.push(Open {
                index: records.received.len(),
                address: message.payload().as_ptr() as usize,
            });
            records.received.push(Received {
                handler: message.handler().to_owned(),
                name: message.name().map(str::to_owned),
                payload: Bytes::copy_from_slice(message.payload()),
                headers: message.headers().clone(),
                attempt: message.attempt(),
                redelivery_count: message.redelivery_count(),
                ended: None,
                settlement: None,
                format: message.format(),
            });
        });
    }

    fn handled(&self, message: &Message<'_>, handled: Handled<'_>, _elapsed: Duration) {
        self.0.record(|records| {
            if let Some(open) = records.find_open(message) {
                let index = records.open[open].index;
                records.received[index].ended = Some(Ended::from(handled));
            }
        });
    }

    fn settled(&self, message: &Message<'_>, settlement: Settlement) {
        self.0.record(|records| {
            records
                .settlements
                .push((message.handler().to_owned(), settlement));
            let Some(open) = records.find_open(message) else {
                return; // never received here (settled at shutdown)
            };
            let index = records.open.swap_remove(open).index;
            let received = &mut records.received[index];
            received.settlement = Some(settlement);
            // A retry is waited for only where the broker redelivers and counts: elsewhere
            // it is recorded, and the delivery is over.
            let capabilities = message.capabilities();
            if let Settlement::Retried { .. } = settlement
                && capabilities.requeue
                && capabilities.redelivery_count
            {
                let next = Attempt {
                    handler: received.handler.clone(),
                    payload: received.payload.clone(),
                    attempt: received.attempt + 1,
                };
                match records.early.iter().position(|early| *early == next) {
                    Some(found) => {
                        records.early.swap_remove(found);
                    }
                    None => records.expected.push(next),
                }
            } else if let Some(id) = received.headers.get_str(MESSAGE_ID) {
                let id = id.to_owned();
                records.outstanding.remove(&id);
            }
        });
    }

    fn published(&self, publication: &PublishAttempt<'_>) {
        self.0.record(|records| {
            let format = records.format;
            records.published.push(Published {
                destination: publication.destination().to_owned(),
                payload: Bytes::copy_from_slice(publication.payload()),
                error: publication.error.map(ToString::to_string),
                format,
            });
        });
    }
}
