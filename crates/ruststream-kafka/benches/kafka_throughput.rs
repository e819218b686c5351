//! Consumer-group throughput over a Kafka-compatible server (SPEC §5), three loops on the
//! same stored messages, each iteration in a fresh consumer group reading the topic from
//! the start, timed from the first message handled to the last (joining the group is left
//! out). Every loop decodes the reference JSON order into `Order`, reads every field, and
//! commits on the same policy: the handled offsets, asynchronously, every
//! `Config::commit_interval` (5 s, the crate's default), and once at the end.
//!
//! - `raw`: an rdkafka `StreamConsumer` loop as a user writes it (`recv`, decode,
//!   `commit_message` when the interval has passed);
//! - `crate`: this crate's `KafkaSubscriber` stream and `ack_now` (tracked commits);
//! - `framework`: an `App` with a handler taking `Order`.
//!
//! ```text
//! scripts/services kafka
//! cargo bench -p ruststream-kafka --bench kafka_throughput
//! ```
//!
//! Environment: `KAFKA_SERVERS` (default `127.0.0.1:9092`), `MESSAGES` (default 20000).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use parking_lot::Mutex;
use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message as _;
use ruststream::kit::live::fresh_name;
use ruststream::runtime::{App, Router, State, SubscriberDef, handler_fn};
use ruststream::{
    Broker, IncomingMessage, OutgoingMessage, Publisher, SubscriberExt, SubscriptionSource,
};
use ruststream_kafka::{Config, KafkaBroker, KafkaSource, StartFrom};

/// The reference body of SPEC §5.
const BODY: &[u8] = br#"{"id":10000023,"name":"order-10000023","amount":123.25}"#;
const COMMIT_INTERVAL: Duration = Duration::from_secs(5);

/// The reference message type of SPEC §5.
#[derive(Debug, serde::Deserialize)]
struct Order {
    id: u64,
    name: String,
    amount: f64,
}

/// The retry topics the crate's subscriptions created, deleted at the end.
static RETRY_TOPICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn source(topic: &str, prefix: &str) -> KafkaSource {
    let source = KafkaSource::new(topic)
        .group(fresh_name(prefix))
        .start_from(StartFrom::Earliest);
    if let Some(group) = source.group_name() {
        RETRY_TOPICS.lock().push(source.retry_topic_in(group));
    }
    source
}

fn read(order: &Order) {
    black_box((order.id, order.name.len(), order.amount));
}

fn servers() -> String {
    std::env::var("KAFKA_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

fn messages() -> u64 {
    std::env::var("MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000)
}

fn config() -> Config {
    Config::new(servers())
        .client_id("ruststream-kafka-bench")
        .session_timeout(Duration::from_secs(6))
        .commit_interval(COMMIT_INTERVAL)
}

async fn raw_loop(topic: &str, count: u64) -> Duration {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers())
        .set("group.id", fresh_name("bench-raw"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "2000")
        .create()
        .expect("a raw consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut started = None;
    let mut last_commit = Instant::now();
    for n in 0..count {
        let message = consumer.recv().await.expect("a message");
        let order: Order =
            serde_json::from_slice(message.payload().unwrap_or_default()).expect("an order");
        read(&order);
        if n == 0 {
            started = Some(Instant::now());
        }
        if last_commit.elapsed() >= COMMIT_INTERVAL || n + 1 == count {
            let mode = if n + 1 == count {
                CommitMode::Sync
            } else {
                CommitMode::Async
            };
            consumer.commit_message(&message, mode).expect("commit");
            last_commit = Instant::now();
        }
    }
    started.map_or(Duration::ZERO, |started| started.elapsed())
}

async fn crate_loop(broker: &KafkaBroker, topic: &str, count: u64) -> Duration {
    let mut subscriber = source(topic, "bench-crate")
        .subscribe(broker)
        .await
        .expect("subscribe");
    let mut started = None;
    for n in 0..count {
        let message = subscriber
            .next_message()
            .await
            .expect("open")
            .expect("a message");
        let order: Order = serde_json::from_slice(message.payload()).expect("an order");
        read(&order);
        if n == 0 {
            started = Some(Instant::now());
        }
        let _ = message.ack_now();
    }
    let elapsed = started.map_or(Duration::ZERO, |started| started.elapsed());
    subscriber.close().await;
    elapsed
}

#[derive(Default)]
struct Progress {
    handled: AtomicU64,
    first: Mutex<Option<Instant>>,
    done: tokio::sync::Notify,
    target: AtomicU64,
}

async fn handle(order: Order, progress: State<Progress>) {
    read(&order);
    let handled = progress.handled.fetch_add(1, Ordering::Relaxed) + 1;
    if handled == 1 {
        *progress.first.lock() = Some(Instant::now());
    }
    if handled == progress.target.load(Ordering::Relaxed) {
        progress.done.notify_one();
    }
}

async fn framework_loop(topic: &str, count: u64) -> Duration {
    let progress = Arc::new(Progress::default());
    progress.target.store(count, Ordering::Relaxed);
    let source = source(topic, "bench-framework");
    let app = App::new("bench")
        .state_arc(Arc::clone(&progress))
        .broker(
            KafkaBroker::new(config()),
            Router::new().subscriber(SubscriberDef::new(source, handler_fn(handle))),
        )
        .start()
        .await
        .expect("the app starts");
    progress.done.notified().await;
    let elapsed = progress
        .first
        .lock()
        .map_or(Duration::ZERO, |first| first.elapsed());
    app.shutdown().await.expect("the app stops");
    elapsed
}

fn group_consumption(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let count = messages();
    let topic = fresh_name("bench.orders").replace('_', ".");
    let broker = KafkaBroker::new(config());
    runtime.block_on(async {
        broker
            .connect()
            .await
            .expect("the Kafka server (scripts/services kafka)");
        // In flight 1000 at a time: setup, not measured.
        let mut sent = 0;
        while sent < count {
            let batch = (count - sent).min(1000);
            let publishes = (0..batch).map(|_| broker.publish(OutgoingMessage::new(&topic, BODY)));
            for published in futures::future::join_all(publishes).await {
                published.expect("publish");
            }
            sent += batch;
        }
    });

    let mut group = c.benchmark_group("kafka_group_consumption");
    // One consumption of the whole topic per sample: each needs a group join, which
    // is not timed but takes seconds.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(1));
    group.measurement_time(Duration::from_millis(1));
    group.throughput(Throughput::Elements(count));
    group.bench_function("raw", |b| {
        b.iter_custom(|iterations| {
            (0..iterations)
                .map(|_| runtime.block_on(raw_loop(&topic, count)))
                .sum()
        });
    });
    group.bench_function("crate", |b| {
        b.iter_custom(|iterations| {
            (0..iterations)
                .map(|_| runtime.block_on(crate_loop(&broker, &topic, count)))
                .sum()
        });
    });
    group.bench_function("framework", |b| {
        b.iter_custom(|iterations| {
            (0..iterations)
                .map(|_| runtime.block_on(framework_loop(&topic, count)))
                .sum()
        });
    });
    group.finish();
    runtime.block_on(async {
        let mut topics = std::mem::take(&mut *RETRY_TOPICS.lock());
        topics.push(topic.clone());
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        let _ = broker.delete_topics(&topics).await;
        let _ = broker.shutdown().await;
    });
}

criterion_group!(benches, group_consumption);
criterion_main!(benches);
