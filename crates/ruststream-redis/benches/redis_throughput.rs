//! Throughput over a real Redis server, three loops side by side, interleaved, same
//! workload (SPEC §5): each message carries the small JSON order, which the consumer
//! decodes into `Order` and reads every field of; on a stream it then acks (`XACK`,
//! awaited) in the same place.
//!
//! - `raw`: redis-rs alone (`XREADGROUP COUNT 10` on a connection of its own and `XACK`
//!   per message on another; or a Pub/Sub connection);
//! - `crate`: this crate's `RedisSubscriber` stream and `RedisMessage::ack`, no runtime;
//! - `framework`: an `App` with a `#[subscriber]` handler (`Order` argument).
//!
//! ```text
//! cargo bench -p ruststream-redis --bench redis_throughput            # both
//! cargo bench -p ruststream-redis --bench redis_throughput -- stream  # streams only
//! cargo bench -p ruststream-redis --bench redis_throughput -- pubsub
//! ```
//!
//! Environment: `REDIS_URL` (default `redis://127.0.0.1:6379`), `ROUNDS` (default 5),
//! `STREAM_MESSAGES` (default 20000), `PUBSUB_MESSAGES` (default 100000).
//!
//! Throughput is timed from the first message handled to the last. Each stream round
//! reads the same stored entries through a fresh consumer group created at `0`; the
//! Pub/Sub publisher runs on its own connection, pipelined, while the consumer reads.

use std::hint::black_box;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use redis::Value;
use ruststream::runtime::{App, Router};
use ruststream::{Broker, IncomingMessage, Subscriber, SubscriptionSource, subscriber};
use ruststream_redis::{Config, RedisBroker, RedisSource};

/// The reference body of SPEC §5.
const BODY: &[u8] = br#"{"id":10000023,"name":"order-10000023","amount":123.25}"#;
const STREAM: &str = "rsbench:stream";
const CHANNEL: &str = "rsbench:channel";

/// The reference message type of SPEC §5.
#[derive(Debug, serde::Deserialize)]
struct Order {
    id: u64,
    name: String,
    amount: f64,
}

static HANDLED: AtomicU64 = AtomicU64::new(0);
static TARGET: AtomicU64 = AtomicU64::new(0);
static TIMES: Mutex<(Option<Instant>, Option<Instant>)> = Mutex::new((None, None));
/// The consumer group of the current stream round.
static GROUP: Mutex<String> = Mutex::new(String::new());

fn group() -> String {
    GROUP.lock().unwrap().clone()
}

fn count() {
    let n = HANDLED.fetch_add(1, Ordering::AcqRel) + 1;
    if n == 1 {
        TIMES.lock().unwrap().0 = Some(Instant::now());
    }
    if n == TARGET.load(Ordering::Acquire) {
        TIMES.lock().unwrap().1 = Some(Instant::now());
    }
}

/// The user's work: decode, read every field, count.
fn handle(payload: &[u8]) {
    let order: Order = serde_json::from_slice(payload).expect("the bench body decodes");
    black_box(order.id);
    black_box(order.name.as_str());
    black_box(order.amount);
    count();
}

fn reset(target: u64) {
    HANDLED.store(0, Ordering::Release);
    TARGET.store(target, Ordering::Release);
    *TIMES.lock().unwrap() = (None, None);
}

/// Messages per second, first handled to last.
async fn wait_done(target: u64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    let (first, last) = loop {
        if let (Some(first), Some(last)) = *TIMES.lock().unwrap() {
            break (first, last);
        }
        assert!(Instant::now() < deadline, "the round did not finish");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    (target - 1) as f64 / last.duration_since(first).as_secs_f64()
}

#[subscriber(RedisSource::stream(STREAM).group(group()))]
async fn on_stream(order: Order) {
    black_box(order.id);
    black_box(order.name.as_str());
    black_box(order.amount);
    count();
}

#[subscriber("rsbench:channel")]
async fn on_channel(order: Order) {
    black_box(order.id);
    black_box(order.name.as_str());
    black_box(order.amount);
    count();
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Raw,
    Crate,
    Framework,
}

const VARIANTS: [Variant; 3] = [Variant::Raw, Variant::Crate, Variant::Framework];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn connection(url: &str) -> redis::aio::MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

/// The `__data__` of each entry of an `XREADGROUP` reply, with its id.
fn entries(reply: Value) -> Vec<(Vec<u8>, Vec<u8>)> {
    let Value::Array(streams) = reply else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for stream in streams {
        let Value::Array(mut parts) = stream else {
            continue;
        };
        let Some(Value::Array(items)) = parts.pop() else {
            continue;
        };
        for item in items {
            let Value::Array(mut entry) = item else {
                continue;
            };
            let (Some(Value::Array(fields)), Some(Value::BulkString(id))) =
                (entry.pop(), entry.pop())
            else {
                continue;
            };
            let mut fields = fields.into_iter();
            while let (Some(Value::BulkString(field)), Some(Value::BulkString(value))) =
                (fields.next(), fields.next())
            {
                if field == b"__data__" {
                    out.push((id.clone(), value));
                }
            }
        }
    }
    out
}

async fn stream_round(url: &str, variant: Variant, messages: u64, round: usize) -> f64 {
    let group = format!("bench-{round}-{variant:?}");
    *GROUP.lock().unwrap() = group.clone();
    let mut admin = connection(url).await;
    let _: Value = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg(&group)
        .arg("0")
        .query_async(&mut admin)
        .await
        .unwrap();
    reset(messages);
    let rate = match variant {
        Variant::Raw => {
            let mut reader = connection(url).await;
            let mut acker = connection(url).await;
            while HANDLED.load(Ordering::Acquire) < messages {
                let reply: Value = redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(&group)
                    .arg("raw")
                    .arg("COUNT")
                    .arg(10)
                    .arg("BLOCK")
                    .arg(100)
                    .arg("STREAMS")
                    .arg(STREAM)
                    .arg(">")
                    .query_async(&mut reader)
                    .await
                    .unwrap();
                for (id, data) in entries(reply) {
                    let order: Order = serde_json::from_slice(&data).unwrap();
                    black_box(order.id);
                    black_box(order.name.as_str());
                    black_box(order.amount);
                    let _: i64 = redis::cmd("XACK")
                        .arg(STREAM)
                        .arg(&group)
                        .arg(id)
                        .query_async(&mut acker)
                        .await
                        .unwrap();
                    count();
                }
            }
            wait_done(messages).await
        }
        Variant::Crate => {
            let broker = RedisBroker::new(Config::new(url));
            broker.connect().await.unwrap();
            let mut subscriber = RedisSource::stream(STREAM)
                .group(&group)
                .subscribe(&broker)
                .await
                .unwrap();
            let mut stream = std::pin::pin!(subscriber.stream());
            while HANDLED.load(Ordering::Acquire) < messages {
                let message = stream.next().await.unwrap().unwrap();
                handle(message.payload());
                message.ack().await.unwrap();
            }
            let rate = wait_done(messages).await;
            broker.shutdown().await.unwrap();
            rate
        }
        Variant::Framework => {
            let broker = RedisBroker::new(Config::new(url));
            let app = App::new("bench")
                .broker(broker, Router::new().subscriber(on_stream))
                .start()
                .await
                .unwrap();
            let rate = wait_done(messages).await;
            app.shutdown().await.unwrap();
            rate
        }
    };
    let _: Value = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(STREAM)
        .arg(&group)
        .query_async(&mut admin)
        .await
        .unwrap();
    rate
}

/// FastStream's binary envelope of `body` with no headers, as the crate publishes it: the
/// payload starts at byte 20.
fn envelope(body: &[u8]) -> Vec<u8> {
    let mut value = b"\x89BIN\r\n\x1a\n".to_vec();
    value.extend_from_slice(&1u16.to_be_bytes());
    value.extend_from_slice(&18u32.to_be_bytes());
    value.extend_from_slice(&20u32.to_be_bytes());
    value.extend_from_slice(&0u16.to_be_bytes());
    value.extend_from_slice(body);
    value
}

async fn publish_channel(url: &str, messages: u64) {
    let mut publisher = connection(url).await;
    let value = envelope(BODY);
    let mut sent = 0;
    while sent < messages {
        let mut pipe = redis::pipe();
        for _ in 0..100.min(messages - sent) {
            pipe.cmd("PUBLISH").arg(CHANNEL).arg(&value).ignore();
            sent += 1;
        }
        pipe.query_async::<()>(&mut publisher).await.unwrap();
        // Keep the publisher within reach of the consumer (Pub/Sub has no flow control).
        while sent > HANDLED.load(Ordering::Acquire) + 20_000 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

async fn pubsub_round(url: &str, variant: Variant, messages: u64) -> f64 {
    reset(messages);
    match variant {
        Variant::Raw => {
            let mut pubsub = redis::Client::open(url)
                .unwrap()
                .get_async_pubsub()
                .await
                .unwrap();
            pubsub.subscribe(CHANNEL).await.unwrap();
            let publisher = tokio::spawn(publish_channel_owned(url.to_owned(), messages));
            let mut stream = pubsub.on_message();
            while HANDLED.load(Ordering::Acquire) < messages {
                let message = stream.next().await.unwrap();
                let payload = message.get_payload_bytes();
                // The payload after the envelope's fixed header (no headers here).
                handle(&payload[20..]);
            }
            publisher.await.unwrap();
        }
        Variant::Crate => {
            let broker = RedisBroker::new(Config::new(url));
            broker.connect().await.unwrap();
            let mut subscriber = RedisSource::channel(CHANNEL)
                .subscribe(&broker)
                .await
                .unwrap();
            let publisher = tokio::spawn(publish_channel_owned(url.to_owned(), messages));
            let mut stream = std::pin::pin!(subscriber.stream());
            while HANDLED.load(Ordering::Acquire) < messages {
                let message = stream.next().await.unwrap().unwrap();
                handle(message.payload());
                message.ack().await.unwrap();
            }
            publisher.await.unwrap();
            broker.shutdown().await.unwrap();
        }
        Variant::Framework => {
            let broker = RedisBroker::new(Config::new(url));
            let app = App::new("bench")
                .broker(broker, Router::new().subscriber(on_channel))
                .start()
                .await
                .unwrap();
            publish_channel(url, messages).await;
            let rate = wait_done(messages).await;
            app.shutdown().await.unwrap();
            return rate;
        }
    }
    wait_done(messages).await
}

async fn publish_channel_owned(url: String, messages: u64) {
    publish_channel(&url, messages).await;
}

fn report(workload: &str, results: &[(Variant, Vec<f64>)]) {
    let median = |rates: &[f64]| {
        let mut sorted = rates.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    let raw = median(&results[0].1);
    println!("{workload}:");
    for (variant, rates) in results {
        let m = median(rates);
        println!(
            "  {variant:?}: median {m:.0} msg/s ({:.3} of raw); rounds {:?}",
            m / raw,
            rates.iter().map(|r| r.round() as u64).collect::<Vec<_>>()
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let rounds = env_u64("ROUNDS", 5) as usize;
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));

    if wants("stream") {
        let messages = env_u64("STREAM_MESSAGES", 20_000);
        let mut admin = connection(&url).await;
        let _: Value = redis::cmd("DEL")
            .arg(STREAM)
            .query_async(&mut admin)
            .await
            .unwrap();
        for chunk in 0..messages.div_ceil(1000) {
            let mut pipe = redis::pipe();
            for _ in 0..1000.min(messages - chunk * 1000) {
                pipe.cmd("XADD")
                    .arg(STREAM)
                    .arg("*")
                    .arg("__data__")
                    .arg(BODY)
                    .ignore();
            }
            pipe.query_async::<()>(&mut admin).await.unwrap();
        }
        let mut results: Vec<(Variant, Vec<f64>)> =
            VARIANTS.iter().map(|v| (*v, Vec::new())).collect();
        for round in 0..rounds {
            for (variant, rates) in &mut results {
                rates.push(stream_round(&url, *variant, messages, round).await);
            }
        }
        report(
            &format!("stream consume + XACK, {messages} entries"),
            &results,
        );
        let _: Value = redis::cmd("DEL")
            .arg(STREAM)
            .query_async(&mut admin)
            .await
            .unwrap();
    }
    if wants("pubsub") {
        let messages = env_u64("PUBSUB_MESSAGES", 100_000);
        let mut results: Vec<(Variant, Vec<f64>)> =
            VARIANTS.iter().map(|v| (*v, Vec::new())).collect();
        for _ in 0..rounds {
            for (variant, rates) in &mut results {
                rates.push(pubsub_round(&url, *variant, messages).await);
            }
        }
        report(&format!("Pub/Sub, {messages} messages"), &results);
    }
}
