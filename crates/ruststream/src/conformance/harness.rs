//! The tools every check uses: [`Ctx`] (fresh names, connections, bounded waits, the
//! current step) and [`Inbox`] (subscribers read through their streams in tasks).

use std::any::Any;
use std::collections::HashSet;
use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::report::Failure;
use super::target::{Capabilities, ConformanceTarget, MessageOf, Mode, SubscriberOf};
use crate::{
    BatchSubscriber, Broker, IncomingMessage, OutgoingMessage, Publisher, Subscriber,
    SubscriptionSource,
};

/// The step a check is at, shared with the runner so a timeout or a panic can name it,
/// and the credentials to redact from every failure.
#[derive(Debug, Clone)]
pub(crate) struct Steps {
    current: Arc<Mutex<String>>,
    credentials: Arc<[String]>,
}

impl Steps {
    pub(crate) fn new(credentials: Vec<String>) -> Self {
        Self {
            current: Arc::new(Mutex::new("start".to_owned())),
            credentials: credentials.into_iter().filter(|c| !c.is_empty()).collect(),
        }
    }

    pub(crate) fn set(&self, step: impl Into<String>) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = step.into();
    }

    pub(crate) fn current(&self) -> String {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether `text` contains one of the credentials.
    pub(crate) fn leaks(&self, text: &str) -> bool {
        self.credentials.iter().any(|c| text.contains(c.as_str()))
    }

    /// `text` with every credential replaced, so a report never prints one.
    pub(crate) fn redact(&self, text: impl Display) -> String {
        let mut text = text.to_string();
        for credential in self.credentials.iter() {
            text = text.replace(credential.as_str(), "<credential redacted>");
        }
        text
    }

    /// A failure at the current step.
    pub(crate) fn fail(&self, expected: impl Display, actual: impl Display) -> Failure {
        self.fail_at(self.current(), expected, actual)
    }

    /// A failure at `step`, redacted.
    pub(crate) fn fail_at(
        &self,
        step: impl Display,
        expected: impl Display,
        actual: impl Display,
    ) -> Failure {
        Failure::new(
            self.redact(step),
            self.redact(expected),
            self.redact(actual),
        )
    }
}

/// The brokers a check connected, shut down by the runner when the check is over.
pub(crate) type Connections<B> = Arc<Mutex<Vec<Arc<B>>>>;

/// What one check gets: the target, its capabilities and bounded helpers.
pub(crate) struct Ctx<T: ConformanceTarget> {
    pub(crate) target: Arc<T>,
    pub(crate) caps: Capabilities,
    /// What the target's subscriptions say their messages can do.
    pub(crate) stated: crate::Capabilities,
    pub(crate) check: &'static str,
    pub(crate) steps: Steps,
    pub(crate) connections: Connections<T::Broker>,
}

impl<T: ConformanceTarget> Ctx<T> {
    /// Enters a step: failures, timeouts and panics from here on name it.
    pub(crate) fn step(&self, step: impl Into<String>) {
        self.steps.set(step);
    }

    /// A failure at the current step.
    pub(crate) fn fail(&self, expected: impl Display, actual: impl Display) -> Failure {
        self.steps.fail(expected, actual)
    }

    /// Fails unless `condition` holds.
    pub(crate) fn ensure(
        &self,
        condition: bool,
        expected: impl Display,
        actual: impl FnOnce() -> String,
    ) -> Result<(), Failure> {
        if condition {
            Ok(())
        } else {
            Err(self.fail(expected, actual()))
        }
    }

    /// A fresh name for this check.
    pub(crate) fn name(&self) -> String {
        self.target.fresh_name(self.check)
    }

    /// A fresh group name for this check.
    pub(crate) fn group(&self) -> String {
        self.target
            .fresh_name(self.check)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect()
    }

    /// The mode single-subscriber checks use: a fresh group where the broker has named
    /// subscriptions, fan-out otherwise.
    pub(crate) fn single_mode(&self) -> Mode {
        if self.caps.named_subscriptions() {
            Mode::Group(self.group())
        } else {
            Mode::FanOut
        }
    }

    /// Awaits `future` for at most `limit`; running out of time fails the step.
    pub(crate) async fn within<F: Future>(
        &self,
        limit: Duration,
        what: &str,
        future: F,
    ) -> Result<F::Output, Failure> {
        tokio::time::timeout(limit, future)
            .await
            .map_err(|_| self.fail(format!("{what} within {limit:?}"), "it did not return"))
    }

    /// A new connection from the target, connected and registered for clean-up.
    pub(crate) async fn connect(&self) -> Result<Arc<T::Broker>, Failure> {
        let broker = self
            .within(
                self.caps.receive_timeout,
                "broker() to return",
                self.target.broker(),
            )
            .await?;
        let broker = Arc::new(broker);
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&broker));
        self.within(
            self.caps.receive_timeout,
            "connect() to return",
            broker.connect(),
        )
        .await?
        .map_err(|e| self.fail("connect() to succeed", format!("error: {e}")))?;
        Ok(broker)
    }

    /// Shuts `broker` down, bounded by the shutdown timeout; an error fails the step.
    pub(crate) async fn shutdown(&self, broker: &T::Broker) -> Result<(), Failure> {
        self.within(
            self.caps.shutdown_timeout,
            "shutdown() to return",
            broker.shutdown(),
        )
        .await?
        .map_err(|e| self.fail("shutdown() to succeed", format!("error: {e}")))
    }

    /// Opens a subscriber to `name` in `mode`.
    pub(crate) async fn subscriber(
        &self,
        broker: &T::Broker,
        name: &str,
        mode: Mode,
    ) -> Result<SubscriberOf<T>, Failure> {
        let source = self.target.source(name, mode);
        self.within(
            self.caps.receive_timeout,
            "subscribe() to return",
            source.subscribe(broker),
        )
        .await?
        .map_err(|e| self.fail("subscribe() to succeed", format!("error: {e}")))
    }

    /// An empty inbox.
    pub(crate) fn inbox(&self) -> Inbox<MessageOf<T>> {
        Inbox::new(self.steps.clone(), &self.caps)
    }

    /// An inbox reading one new subscriber to `name` in `mode`.
    pub(crate) async fn subscribe(
        &self,
        broker: &T::Broker,
        name: &str,
        mode: Mode,
    ) -> Result<Inbox<MessageOf<T>>, Failure> {
        let subscriber = self.subscriber(broker, name, mode).await?;
        let mut inbox = self.inbox();
        inbox.add(subscriber);
        Ok(inbox)
    }

    /// Publishes one message with `publisher`; an error or a hang fails the step.
    pub(crate) async fn publish(
        &self,
        publisher: &T::Publisher,
        msg: OutgoingMessage<'_>,
    ) -> Result<(), Failure> {
        self.within(
            self.caps.receive_timeout,
            "publish() to return",
            publisher.publish(msg),
        )
        .await?
        .map_err(|e| self.fail("publish() to succeed", format!("error: {e}")))
    }

    /// Publishes `payloads` to `name` in order.
    pub(crate) async fn publish_all(
        &self,
        publisher: &T::Publisher,
        name: &str,
        payloads: &[Vec<u8>],
    ) -> Result<(), Failure> {
        for payload in payloads {
            self.publish(publisher, OutgoingMessage::new(name, payload))
                .await?;
        }
        Ok(())
    }

    /// Acks `message`; an error or a hang fails the step.
    pub(crate) async fn ack(&self, message: MessageOf<T>) -> Result<(), Failure> {
        self.within(self.caps.receive_timeout, "ack() to return", message.ack())
            .await?
            .map_err(|e| self.fail("ack() to succeed", format!("error: {e}")))
    }

    /// Nacks `message`; an error or a hang fails the step.
    pub(crate) async fn nack(&self, message: MessageOf<T>, requeue: bool) -> Result<(), Failure> {
        self.within(
            self.caps.receive_timeout,
            "nack() to return",
            message.nack(requeue),
        )
        .await?
        .map_err(|e| self.fail(format!("nack({requeue}) to succeed"), format!("error: {e}")))
    }

    /// Acks every message.
    pub(crate) async fn ack_all(
        &self,
        messages: impl IntoIterator<Item = MessageOf<T>>,
    ) -> Result<(), Failure> {
        for message in messages {
            self.ack(message).await?;
        }
        Ok(())
    }

    /// Fails if `text` contains one of the target's credentials.
    pub(crate) fn no_credentials(&self, what: &str, text: &str) -> Result<(), Failure> {
        self.ensure(
            !self.steps.leaks(text),
            format!("{what} to contain no credential"),
            || format!("it contains one of ConformanceTarget::credentials(): {text}"),
        )
    }
}

/// What a subscriber's reader task reports.
pub(crate) enum Event<M> {
    /// One message from `stream()`.
    Message(M),
    /// One batch from `batches()`.
    Batch(Vec<M>),
    /// An `Err` item.
    Error(String),
    /// The stream ended.
    End,
    /// Polling the stream panicked.
    Panic(String),
}

/// Subscribers read through their streams, each by its own task, into one channel.
///
/// Member `i` is the `i`-th subscriber added. Dropping the inbox (or a member) aborts the
/// reader task, which drops its subscriber; messages still in the channel are dropped
/// unsettled.
pub(crate) struct Inbox<M> {
    rx: mpsc::Receiver<(usize, Event<M>)>,
    tx: mpsc::Sender<(usize, Event<M>)>,
    members: Vec<Option<JoinHandle<()>>>,
    steps: Steps,
    receive: Duration,
    quiet: Duration,
}

impl<M: IncomingMessage + 'static> Inbox<M> {
    fn new(steps: Steps, caps: &Capabilities) -> Self {
        let (tx, rx) = mpsc::channel(16);
        Self {
            rx,
            tx,
            members: Vec::new(),
            steps,
            receive: caps.receive_timeout,
            quiet: caps.quiet_period,
        }
    }

    /// Reads `subscriber.stream()` as a new member; returns its index.
    pub(crate) fn add<S>(&mut self, mut subscriber: S) -> usize
    where
        S: Subscriber<Message = M> + 'static,
    {
        self.spawn_reader(move |member, tx| async move {
            let stream = subscriber.stream().map(|item| match item {
                Ok(message) => Event::Message(message),
                Err(e) => Event::Error(e.to_string()),
            });
            forward(member, stream, &tx).await;
        })
    }

    /// Reads `subscriber.batches(max, wait)` as a new member; returns its index.
    pub(crate) fn add_batches<S>(&mut self, mut subscriber: S, max: usize, wait: Duration) -> usize
    where
        S: BatchSubscriber<Message = M> + 'static,
    {
        self.spawn_reader(move |member, tx| async move {
            let stream = subscriber.batches(max, wait).map(|item| match item {
                Ok(batch) => Event::Batch(batch),
                Err(e) => Event::Error(e.to_string()),
            });
            forward(member, stream, &tx).await;
        })
    }

    /// Runs a member's reader task; a panic in the broker's stream becomes an event.
    fn spawn_reader<F, Fut>(&mut self, reader: F) -> usize
    where
        F: FnOnce(usize, mpsc::Sender<(usize, Event<M>)>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let member = self.members.len();
        let tx = self.tx.clone();
        let read = AssertUnwindSafe(reader(member, tx.clone())).catch_unwind();
        let task = tokio::spawn(async move {
            if let Err(panic) = read.await {
                // The receiver may be gone already; then nobody is waiting for the news.
                let _gone = tx.send((member, Event::Panic(panic_text(panic)))).await;
            }
        });
        self.members.push(Some(task));
        member
    }

    /// Drops member `member`'s subscriber (and its stream) and waits until it is gone.
    pub(crate) async fn drop_member(&mut self, member: usize) {
        if let Some(task) = self.members.get_mut(member).and_then(Option::take) {
            task.abort();
            // The task is cancelled at its next await point; its result says nothing more.
            drop(task.await);
        }
    }

    /// The next event from any member within `limit`; `None` if nothing came.
    pub(crate) async fn next_within(&mut self, limit: Duration) -> Option<(usize, Event<M>)> {
        tokio::time::timeout(limit, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next message from any member, within the receive timeout.
    pub(crate) async fn expect(&mut self, what: &str) -> Result<(usize, M), Failure> {
        let limit = self.receive;
        match self.next_within(limit).await {
            Some((member, Event::Message(message))) => Ok((member, message)),
            Some((_, Event::Batch(batch))) => Err(self.steps.fail(
                format!("{what} within {limit:?}"),
                format!("a batch of {}", batch.len()),
            )),
            other => Err(self
                .steps
                .fail(format!("{what} within {limit:?}"), unexpected(other, limit))),
        }
    }

    /// The next message from any member, checking its payload.
    pub(crate) async fn expect_payload(&mut self, payload: &[u8]) -> Result<M, Failure> {
        let what = format!("the message {}", show(payload));
        let (_, message) = self.expect(&what).await?;
        if message.payload() == payload {
            Ok(message)
        } else {
            Err(self.steps.fail(what, show(message.payload())))
        }
    }

    /// `count` messages from any member, each within the receive timeout of the last.
    pub(crate) async fn expect_many(
        &mut self,
        count: usize,
        what: &str,
    ) -> Result<Vec<(usize, M)>, Failure> {
        let mut messages = Vec::with_capacity(count);
        while messages.len() < count {
            let what = format!("{what} ({} of {count} received so far)", messages.len());
            messages.push(self.expect(&what).await?);
        }
        Ok(messages)
    }

    /// Each of `expected`, `copies` times, from any member, in any order, each within the
    /// receive timeout of the last; a timeout names the missing messages.
    pub(crate) async fn expect_each(
        &mut self,
        expected: &[Vec<u8>],
        copies: usize,
        what: &str,
    ) -> Result<Vec<(usize, M)>, Failure> {
        let count = expected.len() * copies;
        let mut messages: Vec<(usize, M)> = Vec::with_capacity(count);
        while messages.len() < count {
            let what = format!("{what} ({} of {count} received so far)", messages.len());
            match self.expect(&what).await {
                Ok(message) => messages.push(message),
                Err(mut failure) => {
                    let got: Vec<&[u8]> = messages.iter().map(|(_, m)| m.payload()).collect();
                    failure.actual.push_str(&missing(expected, copies, &got));
                    return Err(failure);
                }
            }
        }
        Ok(messages)
    }

    /// The next batch from any member, within the receive timeout.
    pub(crate) async fn expect_batch(&mut self, what: &str) -> Result<Vec<M>, Failure> {
        let limit = self.receive;
        match self.next_within(limit).await {
            Some((_, Event::Batch(batch))) => Ok(batch),
            Some((_, Event::Message(message))) => Err(self.steps.fail(
                format!("{what} within {limit:?}"),
                format!("a single message {}", show(message.payload())),
            )),
            other => Err(self
                .steps
                .fail(format!("{what} within {limit:?}"), unexpected(other, limit))),
        }
    }

    /// Nothing from any member for the quiet period.
    pub(crate) async fn expect_silence(&mut self, why: &str) -> Result<(), Failure> {
        let quiet = self.quiet;
        match self.next_within(quiet).await {
            None => Ok(()),
            Some((member, Event::Message(message))) => Err(self.steps.fail(
                format!("no message for {quiet:?} ({why})"),
                format!(
                    "subscriber {member} received {}{}",
                    show(message.payload()),
                    redeliveries(&message)
                ),
            )),
            Some((member, Event::Batch(batch))) => Err(self.steps.fail(
                format!("no message for {quiet:?} ({why})"),
                format!(
                    "subscriber {member} received a batch of {}: {}",
                    batch.len(),
                    show_all(batch.iter().map(IncomingMessage::payload))
                ),
            )),
            other => Err(self.steps.fail(
                format!("no message for {quiet:?} ({why})"),
                unexpected(other, quiet),
            )),
        }
    }

    /// Waits up to `limit` until `member`'s stream ends or yields an error, skipping any
    /// message still delivered before that.
    pub(crate) async fn expect_end(
        &mut self,
        member: usize,
        limit: Duration,
    ) -> Result<(), Failure> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Some((m, Event::End | Event::Error(_))) if m == member => return Ok(()),
                Some((m, Event::Panic(panic))) if m == member => {
                    return Err(self.steps.fail(
                        "the subscriber's stream to end or yield an error, without a panic",
                        format!("it panicked: {panic}"),
                    ));
                }
                Some(_) => {}
                None => {
                    return Err(self.steps.fail(
                        format!(
                            "the subscriber's stream to end or yield an error within {limit:?}"
                        ),
                        "it stayed open",
                    ));
                }
            }
        }
    }
}

/// Sends every item of `stream` as member `member`'s events, then the end.
async fn forward<M>(
    member: usize,
    stream: impl futures::Stream<Item = Event<M>>,
    tx: &mpsc::Sender<(usize, Event<M>)>,
) {
    let mut stream = pin!(stream);
    while let Some(event) = stream.next().await {
        if tx.send((member, event)).await.is_err() {
            return;
        }
    }
    // The receiver may be gone already; then nobody is waiting for the end.
    let _gone = tx.send((member, Event::End)).await;
}

/// The message of a panic payload.
pub(crate) fn panic_text(payload: Box<dyn Any + Send>) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-text payload".to_owned());
    format!("a panic: {text}")
}

impl<M> Drop for Inbox<M> {
    fn drop(&mut self) {
        for task in self.members.iter().flatten() {
            task.abort();
        }
    }
}

fn unexpected<M>(event: Option<(usize, Event<M>)>, limit: Duration) -> String {
    match event {
        None => format!("nothing arrived within {limit:?}"),
        Some((member, Event::End)) => format!("subscriber {member}'s stream ended"),
        Some((member, Event::Error(e))) => {
            format!("subscriber {member}'s stream yielded an error: {e}")
        }
        Some((member, Event::Panic(p))) => format!("subscriber {member}'s stream panicked: {p}"),
        Some((member, Event::Message(_))) => format!("a message on subscriber {member}"),
        Some((member, Event::Batch(b))) => format!("a batch of {} on subscriber {member}", b.len()),
    }
}

fn redeliveries<M: IncomingMessage>(message: &M) -> String {
    match message.redelivery_count() {
        Some(n) => format!(" (redelivery_count {n})"),
        None => String::new(),
    }
}

/// A payload for failure messages: quoted if short text, else its size.
pub(crate) fn show(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(text) if text.len() <= 48 => format!("{text:?}"),
        _ => format!("<{} bytes>", payload.len()),
    }
}

/// Several payloads for failure messages.
pub(crate) fn show_all<'a>(payloads: impl IntoIterator<Item = &'a [u8]>) -> String {
    let shown: Vec<String> = payloads.into_iter().map(show).collect();
    format!("[{}]", shown.join(", "))
}

/// `"; missing [...]"`: the payloads of `expected` received fewer than `copies` times.
pub(crate) fn missing(expected: &[Vec<u8>], copies: usize, received: &[&[u8]]) -> String {
    const SHOWN: usize = 10;
    let absent: Vec<&[u8]> = expected
        .iter()
        .map(Vec::as_slice)
        .filter(|e| received.iter().filter(|r| **r == *e).count() < copies)
        .collect();
    let more = absent.len().saturating_sub(SHOWN);
    let mut note = format!("; missing {}", show_all(absent.into_iter().take(SHOWN)));
    if more > 0 {
        note.push_str(&format!(" and {more} more"));
    }
    note
}

/// `count` distinct payloads starting with `prefix`: `prefix-0000`, `prefix-0001`...
pub(crate) fn payloads(prefix: &str, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| format!("{prefix}-{i:04}").into_bytes())
        .collect()
}

/// Checks that `received` holds exactly `expected`, each once, in any order.
pub(crate) fn same_set(
    steps: &Steps,
    what: &str,
    expected: &[Vec<u8>],
    received: &[&[u8]],
) -> Result<(), Failure> {
    let mut seen = HashSet::new();
    let duplicates: Vec<&[u8]> = received
        .iter()
        .copied()
        .filter(|p| !seen.insert(*p))
        .collect();
    let expected_set: HashSet<&[u8]> = expected.iter().map(Vec::as_slice).collect();
    let missing: Vec<&[u8]> = expected
        .iter()
        .map(Vec::as_slice)
        .filter(|p| !seen.contains(p))
        .collect();
    let unexpected: Vec<&[u8]> = seen
        .iter()
        .copied()
        .filter(|p| !expected_set.contains(p))
        .collect();
    if duplicates.is_empty() && missing.is_empty() && unexpected.is_empty() {
        return Ok(());
    }
    Err(steps.fail(
        format!("{what}: each of {} messages exactly once", expected.len()),
        format!(
            "{} received; missing {}; delivered twice {}; unexpected {}",
            received.len(),
            show_all(missing),
            show_all(duplicates),
            show_all(unexpected)
        ),
    ))
}

/// Checks that `received` is `expected` in order, naming the first difference.
pub(crate) fn same_order(
    steps: &Steps,
    what: &str,
    expected: &[Vec<u8>],
    received: &[&[u8]],
) -> Result<(), Failure> {
    let first_difference = expected
        .iter()
        .zip(received)
        .position(|(e, r)| e.as_slice() != *r);
    match first_difference {
        None if expected.len() == received.len() => Ok(()),
        None => Err(steps.fail(
            format!("{what}: {} messages in publish order", expected.len()),
            format!("{} messages", received.len()),
        )),
        Some(at) => Err(steps.fail(
            format!(
                "{what}: messages in publish order, {} at position {at}",
                show(&expected[at])
            ),
            format!(
                "{} at position {at} (received around it: {})",
                show(received[at]),
                show_all(received.iter().copied().skip(at.saturating_sub(2)).take(5))
            ),
        )),
    }
}
