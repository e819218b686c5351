//! [`RedisSubscriber`]: the message stream of one subscription, and the tasks that read
//! from Redis for it.
//!
//! Each subscription has a task of its own that reads from its own connection (the reads
//! block) into a bounded channel; the subscriber owns the receiving end, so dropping a
//! stream future loses nothing, and dropping the subscriber ends the task. What the task
//! has read and not yet handed out is unsettled in Redis (in the in-flight list, pending
//! in the group), so it comes back like a message in hand.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use redis::Value;
use ruststream::kit::{Backoff, Batcher, ShutdownWatch};
use ruststream::{BatchSubscriber, Capabilities, HeaderSupport, Headers, Subscriber};
use tokio::sync::mpsc;

use crate::broker::Conn;
use crate::message::{DATA_FIELD, DELAY_TOKEN_LEN, Inner, ListEntry, ListShared, Live, Settle};
use crate::message::{StreamEntry, StreamShared};
use crate::source::Kind;
use crate::{RedisBroker, RedisError, RedisMessage, RedisSource, envelope};

type Item = Result<RedisMessage, RedisError>;

/// An open subscription: a `Stream` of [`RedisMessage`]s, and batches of them.
pub struct RedisSubscriber {
    inner: SubscriberInner,
    capabilities: Capabilities,
    name: String,
}

enum SubscriberInner {
    Live(LiveSubscriber),
    #[cfg(feature = "testing")]
    InProcess(ruststream::testing::TestSubscriber),
}

struct LiveSubscriber {
    messages: mpsc::Receiver<Item>,
    batcher: Batcher<RedisMessage, RedisError>,
    watch: ShutdownWatch,
    _task: AbortOnDrop,
}

impl std::fmt::Debug for RedisSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSubscriber")
            .field("name", &self.name)
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}

/// Ends the reading task when the subscriber goes away.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn poll_live(
    messages: &mut mpsc::Receiver<Item>,
    watch: &mut ShutdownWatch,
    cx: &mut Context<'_>,
) -> Poll<Option<Item>> {
    if watch.is_triggered() {
        return Poll::Ready(None);
    }
    match messages.poll_recv(cx) {
        Poll::Ready(item) => Poll::Ready(item),
        Poll::Pending => watch.poll_triggered(cx).map(|()| None),
    }
}

impl Subscriber for RedisSubscriber {
    type Message = RedisMessage;
    type Error = RedisError;

    #[cfg(not(feature = "testing"))]
    fn stream(&mut self) -> impl Stream<Item = Item> + Send + '_ {
        let SubscriberInner::Live(live) = &mut self.inner;
        live_stream(live)
    }

    #[cfg(feature = "testing")]
    fn stream(&mut self) -> impl Stream<Item = Item> + Send + '_ {
        match &mut self.inner {
            SubscriberInner::Live(live) => live_stream(live).left_stream(),
            #[cfg(feature = "testing")]
            SubscriberInner::InProcess(subscriber) => subscriber
                .stream()
                .map(|message| match message {
                    Ok(message) => Ok(RedisMessage {
                        inner: Inner::InProcess(message),
                    }),
                    Err(never) => match never {},
                })
                .right_stream(),
        }
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }
}

/// The message stream of a live subscription: held messages of an interrupted batch
/// first, then the channel, ending at shutdown.
fn live_stream(live: &mut LiveSubscriber) -> impl Stream<Item = Item> + Send + '_ {
    futures::stream::poll_fn(move |cx| {
        let LiveSubscriber {
            messages,
            batcher,
            watch,
            ..
        } = &mut *live;
        batcher.poll_next(cx, |cx| poll_live(messages, watch, cx))
    })
}

/// The batches of a live subscription, gathered by its `Batcher`.
fn live_batches(
    live: &mut LiveSubscriber,
    max_messages: usize,
    max_wait: Duration,
) -> impl Stream<Item = Result<Vec<RedisMessage>, RedisError>> + Send + '_ {
    futures::stream::unfold(live, move |live| async move {
        let LiveSubscriber {
            messages,
            batcher,
            watch,
            ..
        } = &mut *live;
        let batch = batcher
            .next_batch(max_messages, max_wait, |cx| poll_live(messages, watch, cx))
            .await;
        batch.map(|batch| (batch, live))
    })
}

impl BatchSubscriber for RedisSubscriber {
    #[cfg(not(feature = "testing"))]
    fn batches(
        &mut self,
        max_messages: usize,
        max_wait: Duration,
    ) -> impl Stream<Item = Result<Vec<RedisMessage>, RedisError>> + Send + '_ {
        let SubscriberInner::Live(live) = &mut self.inner;
        live_batches(live, max_messages, max_wait)
    }

    #[cfg(feature = "testing")]
    fn batches(
        &mut self,
        max_messages: usize,
        max_wait: Duration,
    ) -> impl Stream<Item = Result<Vec<RedisMessage>, RedisError>> + Send + '_ {
        match &mut self.inner {
            SubscriberInner::Live(live) => live_batches(live, max_messages, max_wait).left_stream(),
            #[cfg(feature = "testing")]
            SubscriberInner::InProcess(test) => test
                .batches(max_messages, max_wait)
                .map(|batch| match batch {
                    Ok(messages) => Ok(messages
                        .into_iter()
                        .map(|message| RedisMessage {
                            inner: Inner::InProcess(message),
                        })
                        .collect()),
                    Err(never) => match never {},
                })
                .right_stream(),
        }
    }
}

/// The capabilities of a subscription of `source`'s kind.
pub(crate) fn capabilities_of(source: &RedisSource) -> Capabilities {
    match (source.kind, &source.group) {
        (Kind::Channel | Kind::Pattern, _) => Capabilities::NONE.with_headers(HeaderSupport::Text),
        (Kind::List, _) => Capabilities::NONE
            .with_requeue(true)
            .with_delayed_requeue(true)
            .with_headers(HeaderSupport::Text),
        (Kind::Stream, Some(_)) => Capabilities::NONE
            .with_requeue(true)
            .with_delayed_requeue(true)
            .with_redelivery_count(true)
            .with_headers(HeaderSupport::Binary),
        (Kind::Stream, None) => Capabilities::NONE.with_headers(HeaderSupport::Binary),
    }
}

/// A consumer name no other subscription uses.
fn random_consumer() -> String {
    format!("rs-{}-{:012x}", std::process::id(), fastrand::u64(..) >> 16)
}

pub(crate) async fn open(
    source: RedisSource,
    broker: &RedisBroker,
) -> Result<RedisSubscriber, RedisError> {
    let capabilities = capabilities_of(&source);
    #[cfg(feature = "testing")]
    if let Some(client) = broker.test_client() {
        return crate::testing::subscribe(client, &source)
            .await
            .map(|subscriber| RedisSubscriber {
                name: source.name.clone(),
                capabilities: subscriber.capabilities(),
                inner: SubscriberInner::InProcess(subscriber),
            });
    }
    broker.manager()?;
    // Pub/Sub has no flow control: a roomier channel lets its task read ahead in bursts
    // (fewer wake-ups); lists and streams fetch at most `count` ahead, unsettled in Redis.
    let capacity = match source.kind {
        Kind::Channel | Kind::Pattern => source.count.max(256),
        Kind::List | Kind::Stream => source.count.max(1),
    };
    let (tx, rx) = mpsc::channel(capacity);
    let name = source.name.clone();
    let task = match source.kind {
        Kind::Channel | Kind::Pattern => {
            let pubsub = subscribe_pubsub(broker, &source).await?;
            tokio::spawn(pubsub_task(broker.clone(), source, pubsub, tx))
        }
        Kind::List => {
            let reader = ListReader::start(broker, source).await?;
            tokio::spawn(reader.run(tx))
        }
        Kind::Stream => {
            let reader = StreamReader::start(broker, source).await?;
            tokio::spawn(reader.run(tx))
        }
    };
    Ok(RedisSubscriber {
        inner: SubscriberInner::Live(LiveSubscriber {
            messages: rx,
            batcher: Batcher::new(),
            watch: broker.inner.shutdown.watch(),
            _task: AbortOnDrop(task),
        }),
        capabilities,
        name,
    })
}

fn subscribe_error(broker: &RedisBroker, name: &str, error: impl std::fmt::Display) -> RedisError {
    RedisError::Subscribe {
        name: name.to_owned(),
        reason: broker.redact(error),
    }
}

/// How long to wait before reconnecting after `attempt` failures in a row.
fn reconnect_delay(attempt: u32) -> Duration {
    Backoff::exponential(Duration::from_millis(100), Duration::from_secs(2)).delay(attempt)
}

// ---------------------------------------------------------------------------------------
// Pub/Sub

async fn subscribe_pubsub(
    broker: &RedisBroker,
    source: &RedisSource,
) -> Result<redis::aio::PubSub, RedisError> {
    let mut pubsub = broker.pubsub().await?;
    let subscribed = match source.kind {
        Kind::Pattern => pubsub.psubscribe(&source.name).await,
        _ => pubsub.subscribe(&source.name).await,
    };
    subscribed.map_err(|error| subscribe_error(broker, &source.name, error))?;
    Ok(pubsub)
}

async fn pubsub_task(
    broker: RedisBroker,
    source: RedisSource,
    mut pubsub: redis::aio::PubSub,
    tx: mpsc::Sender<Item>,
) {
    let mut failures = 0;
    loop {
        {
            let mut messages = pubsub.on_message();
            loop {
                let next = tokio::select! {
                    () = broker.inner.shutdown.triggered() => return,
                    next = messages.next() => next,
                };
                let Some(msg) = next else { break };
                failures = 0;
                let name: Arc<str> = Arc::from(msg.get_channel_name());
                let (payload, headers) =
                    envelope::decode(Bytes::copy_from_slice(msg.get_payload_bytes()));
                let message = live_message(name, payload, headers, None, Settle::AtMostOnce);
                if tx.send(Ok(message)).await.is_err() {
                    return;
                }
            }
        }
        // The connection ended: Pub/Sub loses what was published meanwhile; subscribe
        // again on a new connection.
        tracing::warn!(channel = %source.name, "Redis Pub/Sub connection lost; subscribing again");
        loop {
            tokio::select! {
                () = broker.inner.shutdown.triggered() => return,
                () = tokio::time::sleep(reconnect_delay(failures)) => {}
            }
            failures = failures.saturating_add(1);
            match subscribe_pubsub(&broker, &source).await {
                Ok(again) => {
                    pubsub = again;
                    break;
                }
                Err(error) => tracing::warn!(%error, "Redis Pub/Sub resubscribe failed"),
            }
        }
    }
}

fn live_message(
    name: Arc<str>,
    payload: Bytes,
    headers: Headers,
    redelivery_count: Option<u32>,
    settle: Settle,
) -> RedisMessage {
    RedisMessage {
        inner: Inner::Live(Live {
            name,
            payload,
            headers,
            redelivery_count,
            settle,
        }),
    }
}

// ---------------------------------------------------------------------------------------
// Lists

/// The keys a list subscription uses besides the list, in the list's hash slot.
pub(crate) fn list_keys(list: &str, consumer: &str) -> (String, String, String) {
    (
        format!("{{{list}}}:rs:inflight:{consumer}"),
        format!("{{{list}}}:rs:consumers"),
        format!("{{{list}}}:rs:delayed"),
    )
}

/// The housekeeping of a list consumer, atomic: beat (the consumer's score in the
/// consumers set is the server time), move the in-flight lists of consumers that stopped
/// beating back to the head of the list, move due delayed messages back, and return the
/// milliseconds until the next delayed message is due (-1: none).
const LIST_HOUSEKEEPING: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], now, ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[2]), 'LIMIT', 0, 16)
for _, consumer in ipairs(dead) do
  local inflight = ARGV[3] .. consumer
  while redis.call('LMOVE', inflight, KEYS[1], 'RIGHT', 'LEFT') do end
  redis.call('ZREM', KEYS[2], consumer)
end
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 256)
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[3], member)
  redis.call('LPUSH', KEYS[1], string.sub(member, tonumber(ARGV[4]) + 1))
end
local next = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if next[2] then return math.max(tonumber(next[2]) - now, 0) end
return -1
";

struct ListReader {
    broker: RedisBroker,
    source: RedisSource,
    consumer: String,
    consumers: String,
    shared: Arc<ListShared>,
    connection: Conn,
    housekeeping: redis::Script,
}

impl ListReader {
    async fn start(broker: &RedisBroker, source: RedisSource) -> Result<Self, RedisError> {
        let consumer = source.consumer.clone().unwrap_or_else(random_consumer);
        let (inflight, consumers, delayed) = list_keys(&source.name, &consumer);
        let connection = broker.dedicated().await?;
        let reader = Self {
            broker: broker.clone(),
            shared: Arc::new(ListShared {
                broker: broker.clone(),
                list: source.name.clone(),
                inflight,
                delayed,
            }),
            consumer,
            consumers,
            source,
            connection,
            housekeeping: redis::Script::new(LIST_HOUSEKEEPING),
        };
        if reader.source.consumer.is_some() {
            // The same consumer restarting: what it held is unsettled; give it back.
            let mut manager = broker.manager()?;
            let _: i64 = redis::Script::new(
                "local n = 0 while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') do n = n + 1 end return n",
            )
            .key(&reader.shared.inflight)
            .key(&reader.shared.list)
            .invoke_async(&mut manager)
            .await
            .map_err(|error| subscribe_error(broker, &reader.source.name, error))?;
        }
        let mut manager = broker.manager()?;
        reader
            .housekeep(&mut manager)
            .await
            .map_err(|error| subscribe_error(broker, &reader.source.name, error))?;
        Ok(reader)
    }

    /// Runs the housekeeping; the time until the next delayed message is due.
    async fn housekeep(&self, manager: &mut Conn) -> Result<Option<Duration>, redis::RedisError> {
        let prefix = format!("{{{}}}:rs:inflight:", self.source.name);
        let next: i64 = self
            .housekeeping
            .key(&self.source.name)
            .key(&self.consumers)
            .key(&self.shared.delayed)
            .arg(&self.consumer)
            .arg(self.source.visibility_timeout.as_millis() as u64)
            .arg(prefix)
            .arg(DELAY_TOKEN_LEN)
            .invoke_async(manager)
            .await?;
        Ok(u64::try_from(next).ok().map(Duration::from_millis))
    }

    /// How long one `BLMOVE` may block: short enough to beat well within the
    /// visibility timeout.
    fn block(&self) -> Duration {
        self.source
            .block
            .min(self.source.visibility_timeout / 4)
            .max(Duration::from_millis(10))
    }

    async fn run(mut self, tx: mpsc::Sender<Item>) {
        let name: Arc<str> = Arc::from(self.source.name.as_str());
        let beat = self.block();
        let broker = self.broker.clone();
        let mut failures = 0;
        loop {
            // Wait for room in the channel, beating meanwhile.
            let permit = loop {
                tokio::select! {
                    () = broker.inner.shutdown.triggered() => return,
                    permit = tx.reserve() => match permit {
                        Ok(permit) => break permit,
                        Err(_) => return,
                    },
                    () = tokio::time::sleep(beat) => {
                        if let Ok(mut manager) = self.broker.manager() {
                            let _ = self.housekeep(&mut manager).await;
                        }
                    }
                }
            };
            let element = tokio::select! {
                () = broker.inner.shutdown.triggered() => return,
                element = self.next_element() => element,
            };
            match element {
                Ok(Some(raw)) => {
                    failures = 0;
                    let (payload, headers) = envelope::decode(raw.clone());
                    let entry = ListEntry {
                        shared: Arc::clone(&self.shared),
                        raw,
                    };
                    permit.send(Ok(live_message(
                        Arc::clone(&name),
                        payload,
                        headers,
                        None,
                        Settle::List(Box::new(entry)),
                    )));
                }
                Ok(None) => {}
                Err(error) => {
                    drop(permit);
                    tracing::warn!(list = %self.source.name, error = %self.broker.redact(&error), "Redis list read failed; retrying");
                    tokio::select! {
                        () = broker.inner.shutdown.triggered() => return,
                        () = tokio::time::sleep(reconnect_delay(failures)) => {}
                    }
                    failures = failures.saturating_add(1);
                    if let Ok(connection) = self.broker.dedicated().await {
                        self.connection = connection;
                    }
                }
            }
        }
    }

    /// Housekeeping, then one `BLMOVE` that waits at most until the next delayed message
    /// is due.
    async fn next_element(&mut self) -> Result<Option<Bytes>, redis::RedisError> {
        let mut manager = self
            .broker
            .manager()
            .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "broker closed")))?;
        let due_in = self.housekeep(&mut manager).await?;
        let mut block = self.block();
        if let Some(due_in) = due_in {
            block = block.min(due_in).max(Duration::from_millis(10));
        }
        let element: Option<Vec<u8>> = redis::cmd("BLMOVE")
            .arg(&self.source.name)
            .arg(&self.shared.inflight)
            .arg("LEFT")
            .arg("RIGHT")
            .arg(block.as_secs_f64())
            .query_async(&mut self.connection)
            .await?;
        Ok(element.map(Bytes::from))
    }
}

// ---------------------------------------------------------------------------------------
// Streams

/// One entry as read: its id and fields.
type Entry = (String, Vec<(String, Bytes)>);

fn to_string(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

fn to_bytes(value: Value) -> Option<Bytes> {
    match value {
        Value::BulkString(bytes) => Some(Bytes::from(bytes)),
        Value::SimpleString(text) => Some(Bytes::from(text)),
        Value::Int(n) => Some(Bytes::from(n.to_string())),
        _ => None,
    }
}

fn items(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) | Value::Set(items) => items,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    }
}

/// Entries from `[id, [field, value, ...]]` items (a deleted entry, `nil` fields, is
/// skipped).
fn parse_entries(value: Value) -> Vec<Entry> {
    items(value)
        .into_iter()
        .filter_map(|entry| {
            let mut parts = items(entry).into_iter();
            let id = to_string(&parts.next()?)?;
            let fields = parts.next()?;
            if matches!(fields, Value::Nil) {
                return None;
            }
            let mut flat = items(fields).into_iter();
            let mut pairs = Vec::new();
            while let (Some(field), Some(value)) = (flat.next(), flat.next()) {
                pairs.push((to_string(&field)?, to_bytes(value)?));
            }
            Some((id, pairs))
        })
        .collect()
}

/// The entries of an `XREAD`/`XREADGROUP` reply for one stream.
fn parse_read(value: Value) -> Vec<Entry> {
    let streams = items(value);
    // RESP2: [[key, entries]]; RESP3: a map flattened to [key, entries].
    if let Some(Value::Array(_)) = streams.first() {
        streams
            .into_iter()
            .flat_map(|stream| items(stream).into_iter().nth(1).map(parse_entries))
            .flatten()
            .collect()
    } else {
        streams
            .into_iter()
            .nth(1)
            .map(parse_entries)
            .unwrap_or_default()
    }
}

/// The payload and headers of a stream entry: `__data__` is the payload (unwrapped if it
/// is a FastStream envelope), every other field a header, in entry order.
pub(crate) fn entry_message(fields: Vec<(String, Bytes)>) -> (Bytes, Headers) {
    let mut payload = Bytes::new();
    let mut headers = Headers::with_capacity(fields.len().saturating_sub(1));
    for (field, value) in fields {
        if field == DATA_FIELD {
            if value.starts_with(envelope::IDENTITY) {
                let (data, inner) = envelope::decode(value);
                payload = data;
                for (name, value) in inner.iter_bytes() {
                    headers.append(name.to_owned(), value.clone());
                }
            } else {
                payload = value;
            }
        } else {
            headers.append(field, value);
        }
    }
    (payload, headers)
}

struct StreamReader {
    broker: RedisBroker,
    source: RedisSource,
    connection: Conn,
    /// `Some` with a group.
    shared: Option<Arc<StreamShared>>,
    /// The last id read, without a group.
    last_id: String,
    last_claim: tokio::time::Instant,
    last_keep_alive: tokio::time::Instant,
}

impl StreamReader {
    async fn start(broker: &RedisBroker, source: RedisSource) -> Result<Self, RedisError> {
        let connection = broker.dedicated().await?;
        let mut manager = broker.manager()?;
        let shared = match &source.group {
            Some(group) => {
                create_group(&mut manager, &source.name, group, source.start_id())
                    .await
                    .map_err(|error| subscribe_error(broker, &source.name, error))?;
                Some(Arc::new(StreamShared {
                    broker: broker.clone(),
                    stream: source.name.clone(),
                    group: group.clone(),
                    consumer: source.consumer.clone().unwrap_or_else(random_consumer),
                    claim_idle: source.claim_idle,
                    requeued: false.into(),
                    in_hand: std::sync::Mutex::default(),
                    delayed: std::sync::Mutex::default(),
                }))
            }
            None => None,
        };
        let last_id = match (&shared, &source.start) {
            (Some(_), _) => String::new(),
            (None, crate::StartFrom::New) => {
                // `$` would miss what is added between two reads: start from the id of
                // the last entry now.
                let last: Value = redis::cmd("XREVRANGE")
                    .arg(&source.name)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(&mut manager)
                    .await
                    .map_err(|error| subscribe_error(broker, &source.name, error))?;
                parse_entries(last)
                    .into_iter()
                    .next()
                    .map_or_else(|| "0-0".to_owned(), |(id, _)| id)
            }
            (None, start) => start.as_id().to_owned(),
        };
        Ok(Self {
            broker: broker.clone(),
            source,
            connection,
            shared,
            last_id,
            last_claim: tokio::time::Instant::now() - Duration::from_secs(3600),
            last_keep_alive: tokio::time::Instant::now(),
        })
    }

    async fn run(mut self, tx: mpsc::Sender<Item>) {
        let name: Arc<str> = Arc::from(self.source.name.as_str());
        let broker = self.broker.clone();
        let mut failures = 0;
        loop {
            // Wait for room in the channel, keeping what is in hand from going idle.
            let permits = loop {
                tokio::select! {
                    () = broker.inner.shutdown.triggered() => return,
                    permits = tx.reserve_many(self.source.count) => match permits {
                        Ok(permits) => break permits,
                        Err(_) => return,
                    },
                    () = tokio::time::sleep(self.keep_alive_every()) => {
                        if let Err(error) = self.keep_alive().await {
                            tracing::debug!(error = %broker.redact(&error), "Redis stream keep-alive failed");
                        }
                    }
                }
            };
            let read = tokio::select! {
                () = broker.inner.shutdown.triggered() => return,
                read = self.read() => read,
            };
            match read {
                Ok(messages) => {
                    failures = 0;
                    for (permit, (fields, id, deliveries)) in permits.zip(messages) {
                        let (payload, headers) = entry_message(fields);
                        let (settle, redelivery) = match &self.shared {
                            Some(shared) => {
                                shared.hold(&id);
                                (
                                    Settle::Stream(Box::new(StreamEntry {
                                        shared: Arc::clone(shared),
                                        id,
                                    })),
                                    Some(deliveries.saturating_sub(1)),
                                )
                            }
                            None => (Settle::AtMostOnce, None),
                        };
                        permit.send(Ok(live_message(
                            Arc::clone(&name),
                            payload,
                            headers,
                            redelivery,
                            settle,
                        )));
                    }
                }
                Err(error) => {
                    tracing::warn!(stream = %self.source.name, error = %self.broker.redact(&error), "Redis stream read failed; retrying");
                    tokio::select! {
                        () = broker.inner.shutdown.triggered() => return,
                        () = tokio::time::sleep(reconnect_delay(failures)) => {}
                    }
                    failures = failures.saturating_add(1);
                    if let Ok(connection) = self.broker.dedicated().await {
                        self.connection = connection;
                    }
                    if error.code() == Some("NOGROUP")
                        && let (Some(shared), Ok(mut manager)) =
                            (&self.shared, self.broker.manager())
                    {
                        let _ =
                            create_group(&mut manager, &shared.stream, &shared.group, "0").await;
                    }
                }
            }
        }
    }

    /// How often the entries in hand are kept from going idle: well within `claim_idle`.
    fn keep_alive_every(&self) -> Duration {
        (self.source.claim_idle / 3).max(Duration::from_millis(20))
    }

    /// Resets the idle time of every entry in hand (`XCLAIM .. 0 .. JUSTID`: no delivery
    /// is counted), so only a consumer that stopped is claimed from.
    async fn keep_alive(&mut self) -> Result<(), redis::RedisError> {
        self.last_keep_alive = tokio::time::Instant::now();
        let Some(shared) = self.shared.clone() else {
            return Ok(());
        };
        let (waiting, ready) = shared.due_within_claim_idle();
        let mut held = shared.held();
        held.extend(waiting);
        for ids in held.chunks(256) {
            let mut cmd = redis::cmd("XCLAIM");
            cmd.arg(&shared.stream)
                .arg(&shared.group)
                .arg(&shared.consumer)
                .arg(0)
                .arg(ids)
                .arg("JUSTID");
            cmd.query_async::<Value>(&mut self.connection).await?;
        }
        // A delayed entry whose remaining delay fits in `claim_idle`: idle for
        // `claim_idle - remaining` now, so it is claimed when due.
        for (id, idle) in ready {
            let mut cmd = redis::cmd("XCLAIM");
            cmd.arg(&shared.stream)
                .arg(&shared.group)
                .arg(&shared.consumer)
                .arg(0)
                .arg(&id)
                .arg("IDLE")
                .arg(idle.as_millis() as u64)
                .arg("JUSTID");
            cmd.query_async::<Value>(&mut self.connection).await?;
        }
        Ok(())
    }

    /// The next entries (fields, id, delivery count), at most `count`.
    async fn read(
        &mut self,
    ) -> Result<Vec<(Vec<(String, Bytes)>, String, u32)>, redis::RedisError> {
        let Some(shared) = self.shared.clone() else {
            let reply: Value = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(self.source.count)
                .arg("BLOCK")
                .arg(self.source.block.as_millis() as u64)
                .arg("STREAMS")
                .arg(&self.source.name)
                .arg(&self.last_id)
                .query_async(&mut self.connection)
                .await?;
            let entries = parse_read(reply);
            if let Some((id, _)) = entries.last() {
                self.last_id.clone_from(id);
            }
            return Ok(entries
                .into_iter()
                .map(|(id, fields)| (fields, id, 1))
                .collect());
        };
        if self.last_keep_alive.elapsed() >= self.keep_alive_every() {
            self.keep_alive().await?;
        }
        let claim_every =
            (shared.claim_idle / 4).clamp(Duration::from_millis(50), self.source.block);
        if shared.requeued.swap(false, Ordering::AcqRel) || self.last_claim.elapsed() >= claim_every
        {
            self.last_claim = tokio::time::Instant::now();
            let claimed = self.claim(&shared).await?;
            if !claimed.is_empty() {
                return Ok(claimed);
            }
        }
        let block = self
            .source
            .block
            .min(claim_every)
            .min(self.keep_alive_every());
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&shared.group)
            .arg(&shared.consumer)
            .arg("COUNT")
            .arg(self.source.count)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.source.name)
            .arg(">")
            .query_async(&mut self.connection)
            .await?;
        Ok(parse_read(reply)
            .into_iter()
            .map(|(id, fields)| (fields, id, 1))
            .collect())
    }

    /// Claims entries idle for `claim_idle` (of dead consumers, requeued or due), with
    /// their delivery counts; those past `max_deliver` go to the dead-letter stream.
    async fn claim(
        &mut self,
        shared: &StreamShared,
    ) -> Result<Vec<(Vec<(String, Bytes)>, String, u32)>, redis::RedisError> {
        let reply: Value = redis::cmd("XAUTOCLAIM")
            .arg(&shared.stream)
            .arg(&shared.group)
            .arg(&shared.consumer)
            .arg(shared.claim_idle.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(self.source.count)
            .query_async(&mut self.connection)
            .await?;
        let entries = items(reply)
            .into_iter()
            .nth(1)
            .map(parse_entries)
            .unwrap_or_default();
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let counts = self.delivery_counts(shared, &entries).await?;
        let mut out = Vec::with_capacity(entries.len());
        for (id, fields) in entries {
            if shared.holds(&id) {
                // Ours, in hand: claimed only because a keep-alive came late.
                continue;
            }
            let deliveries = counts
                .iter()
                .find(|(pending, _)| *pending == id)
                .map_or(2, |(_, count)| *count);
            if let Some(max) = self.source.max_deliver
                && deliveries > max
            {
                self.dead_letter(shared, &id, &fields, deliveries).await?;
                continue;
            }
            out.push((fields, id, deliveries));
        }
        Ok(out)
    }

    async fn delivery_counts(
        &mut self,
        shared: &StreamShared,
        entries: &[Entry],
    ) -> Result<Vec<(String, u32)>, redis::RedisError> {
        let (Some((first, _)), Some((last, _))) = (entries.first(), entries.last()) else {
            return Ok(Vec::new());
        };
        let reply: Value = redis::cmd("XPENDING")
            .arg(&shared.stream)
            .arg(&shared.group)
            .arg(first)
            .arg(last)
            .arg(entries.len().max(self.source.count))
            .arg(&shared.consumer)
            .query_async(&mut self.connection)
            .await?;
        Ok(items(reply)
            .into_iter()
            .filter_map(|pending| {
                let parts = items(pending);
                let id = to_string(parts.first()?)?;
                let count = match parts.get(3)? {
                    Value::Int(n) => u32::try_from(*n).ok()?,
                    _ => return None,
                };
                Some((id, count))
            })
            .collect())
    }

    async fn dead_letter(
        &mut self,
        shared: &StreamShared,
        id: &str,
        fields: &[(String, Bytes)],
        deliveries: u32,
    ) -> Result<(), redis::RedisError> {
        let target = self
            .source
            .dead_letter
            .clone()
            .unwrap_or_else(|| format!("{}:dlq", shared.stream));
        let mut pipe = redis::pipe();
        pipe.atomic();
        let xadd = pipe.cmd("XADD").arg(&target).arg("*");
        for (field, value) in fields {
            xadd.arg(field).arg(&value[..]);
        }
        xadd.arg("x-dead-letter-stream")
            .arg(&shared.stream)
            .arg("x-dead-letter-id")
            .arg(id)
            .arg("x-dead-letter-deliveries")
            .arg(deliveries);
        pipe.cmd("XACK")
            .arg(&shared.stream)
            .arg(&shared.group)
            .arg(id);
        pipe.query_async::<Value>(&mut self.connection).await?;
        tracing::warn!(stream = %shared.stream, %id, deliveries, dead_letter = %target, "Redis stream entry delivered too often; moved to the dead-letter stream");
        Ok(())
    }
}

async fn create_group(
    manager: &mut Conn,
    stream: &str,
    group: &str,
    start: &str,
) -> Result<(), redis::RedisError> {
    let created: Result<Value, _> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(group)
        .arg(start)
        .arg("MKSTREAM")
        .query_async(manager)
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
        Err(error) => Err(error),
    }
}
