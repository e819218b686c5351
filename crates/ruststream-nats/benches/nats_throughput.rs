//! Throughput over a real NATS server, three loops side by side, interleaved, same
//! workload (SPEC §5): each message carries the small JSON order, which the consumer
//! decodes into `Order`, reads every field of, and (JetStream) acks in the same place,
//! after the work, as a user of the client writes it: `message.ack().await`, which queues
//! the `+ACK` on the connection without waiting for the server.
//!
//! - `raw`: async-nats alone (a core subscription, or a JetStream pull stream acked with
//!   async-nats' `Message::ack`);
//! - `crate`: this crate's `NatsSubscriber` stream and `NatsMessage::ack`, no runtime;
//! - `framework`: an `App` with a `#[subscriber]` handler (`Order` argument).
//!
//! ```text
//! cargo bench -p ruststream-nats --bench nats_throughput            # both
//! cargo bench -p ruststream-nats --bench nats_throughput -- core    # core only
//! cargo bench -p ruststream-nats --bench nats_throughput -- jetstream
//! ```
//!
//! Environment: `NATS_URL` (default `nats://127.0.0.1:4222`), `ROUNDS` (default 5),
//! `VARIANT` (`raw`, `crate` or `framework`: run that loop alone, e.g. under callgrind),
//! `CORE_MESSAGES` (default 200000), `JS_MESSAGES` (default 20000).
//!
//! Each round also reports the process's CPU time per message over the same span (summed
//! over its threads from `/proc/self/task/*/schedstat`), which a busy shared machine
//! disturbs less than throughput: time spent waiting for a CPU is not counted.
//!
//! Throughput is timed from the first message handled to the last, so subscribing and
//! consumer creation are left out; the core publisher runs on its own connection and
//! keeps at most 20 000 messages ahead of the consumer. Each JetStream round consumes the
//! same stored messages through a fresh durable consumer.

use std::hint::black_box;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, pull};
use bytes::Bytes;
use futures::StreamExt;
use ruststream::runtime::{App, Router};
use ruststream::{Broker, IncomingMessage, Subscriber, SubscriptionSource, subscriber};
use ruststream_nats::{Config, NatsBroker, NatsSource};

/// The reference body of SPEC §5.
const BODY: &[u8] = br#"{"id":10000023,"name":"order-10000023","amount":123.25}"#;
const CORE_SUBJECT: &str = "rsbench.core";
const JS_SUBJECT: &str = "rsbench.js";
const STREAM: &str = "RSBENCH";
const DURABLE: &str = "rsbench";
/// How far the core publisher may run ahead of the consumer.
const WINDOW: u64 = 20_000;

/// The reference message type of SPEC §5.
#[derive(Debug, serde::Deserialize)]
struct Order {
    id: u64,
    name: String,
    amount: f64,
}

static HANDLED: AtomicU64 = AtomicU64::new(0);
/// When (and at how much process CPU time) the first and the last message were handled.
static TIMES: Mutex<(Option<Mark>, Option<Mark>)> = Mutex::new((None, None));

/// A point in a round: wall-clock time and the CPU time the process had used.
#[derive(Debug, Clone, Copy)]
struct Mark {
    at: Instant,
    cpu_ns: u64,
}

impl Mark {
    fn now() -> Self {
        Self {
            at: Instant::now(),
            cpu_ns: process_cpu_ns(),
        }
    }
}

/// CPU time this process's threads have used, in nanoseconds: the first field of each
/// `/proc/self/task/<tid>/schedstat` (Linux), summed. CPU time per message is steadier
/// than throughput on a shared machine, as waiting for the CPU is not counted.
fn process_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// What one round measured.
#[derive(Debug, Clone, Copy)]
struct Round {
    /// Messages per second, first handled to last.
    throughput: f64,
    /// Process CPU nanoseconds per message over the same span (publisher included, the
    /// same in every variant).
    cpu_ns_per_message: f64,
}
static TARGET: AtomicU64 = AtomicU64::new(0);

/// The user's work: decode, read every field, count (first and last time noted).
fn handle(payload: &[u8]) {
    let order: Order = serde_json::from_slice(payload).expect("the bench body decodes");
    black_box(order.id);
    black_box(order.name.as_str());
    black_box(order.amount);
    let n = HANDLED.fetch_add(1, Ordering::AcqRel) + 1;
    if n == 1 {
        TIMES.lock().unwrap().0 = Some(Mark::now());
    }
    if n == TARGET.load(Ordering::Acquire) {
        TIMES.lock().unwrap().1 = Some(Mark::now());
    }
}

fn reset(target: u64) {
    HANDLED.store(0, Ordering::Release);
    TARGET.store(target, Ordering::Release);
    *TIMES.lock().unwrap() = (None, None);
}

async fn wait_done(target: u64) -> Round {
    let deadline = Instant::now() + Duration::from_secs(120);
    // The last message's mark is taken just after the count reaches the target: wait
    // for the mark itself.
    let (first, last) = loop {
        if let (Some(first), Some(last)) = *TIMES.lock().unwrap() {
            break (first, last);
        }
        assert!(Instant::now() < deadline, "the round did not finish");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let elapsed = last.at.duration_since(first.at).as_secs_f64();
    let handled = (target - 1) as f64;
    Round {
        throughput: handled / elapsed,
        cpu_ns_per_message: last.cpu_ns.saturating_sub(first.cpu_ns) as f64 / handled,
    }
}

#[subscriber("rsbench.core")]
async fn on_core(order: Order) {
    black_box(order.id);
    black_box(order.name.as_str());
    black_box(order.amount);
    count();
}

#[subscriber(NatsSource::new("rsbench.js").stream("RSBENCH").durable("rsbench"))]
async fn on_jetstream(order: Order) {
    black_box(order.id);
    black_box(order.name.as_str());
    black_box(order.amount);
    count();
}

/// The counting part of [`handle`], for the handlers (which decode through the runtime).
fn count() {
    let n = HANDLED.fetch_add(1, Ordering::AcqRel) + 1;
    if n == 1 {
        TIMES.lock().unwrap().0 = Some(Mark::now());
    }
    if n == TARGET.load(Ordering::Acquire) {
        TIMES.lock().unwrap().1 = Some(Mark::now());
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Raw,
    Crate,
    Framework,
}

const VARIANTS: [Variant; 3] = [Variant::Raw, Variant::Crate, Variant::Framework];

impl Variant {
    /// The name `VARIANT=` takes.
    fn key(self) -> &'static str {
        match self {
            Variant::Raw => "raw",
            Variant::Crate => "crate",
            Variant::Framework => "framework",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Variant::Raw => "raw async-nats",
            Variant::Crate => "ruststream-nats subscriber, no runtime",
            Variant::Framework => "framework, #[subscriber] handler",
        }
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Publishes `n` core messages, staying at most [`WINDOW`] ahead of the consumer.
async fn publish_core(client: async_nats::Client, n: u64) {
    let body = Bytes::from_static(BODY);
    for i in 0..n {
        while i >= HANDLED.load(Ordering::Acquire) + WINDOW {
            // Sleep rather than spin: the consumer needs the CPU.
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        client.publish(CORE_SUBJECT, body.clone()).await.unwrap();
    }
    client.flush().await.unwrap();
}

async fn core_round(url: &str, variant: Variant, n: u64) -> Round {
    reset(n);
    let publisher = async_nats::connect(url).await.unwrap();
    let broker = NatsBroker::new(Config::new(url));
    broker.connect().await.unwrap();
    let throughput = match variant {
        Variant::Raw => {
            let client = broker.client().unwrap().clone();
            let mut sub = client.subscribe(CORE_SUBJECT).await.unwrap();
            client.flush().await.unwrap();
            publisher.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            let publishing = tokio::spawn(publish_core(publisher.clone(), n));
            let consume = tokio::spawn(async move {
                for _ in 0..n {
                    let message = sub.next().await.unwrap();
                    handle(&message.payload);
                }
            });
            let throughput = wait_done(n).await;
            consume.await.unwrap();
            publishing.await.unwrap();
            throughput
        }
        Variant::Crate => {
            let mut sub = NatsSource::new(CORE_SUBJECT)
                .subscribe(&broker)
                .await
                .unwrap();
            let publishing = tokio::spawn(publish_core(publisher.clone(), n));
            let consume = tokio::spawn(async move {
                let mut stream = std::pin::pin!(sub.stream());
                for _ in 0..n {
                    let message = stream.next().await.unwrap().unwrap();
                    handle(message.payload());
                    message.ack().await.unwrap();
                }
            });
            let throughput = wait_done(n).await;
            consume.await.unwrap();
            publishing.await.unwrap();
            throughput
        }
        Variant::Framework => {
            let app = App::new("bench")
                .broker(broker.clone(), Router::new().subscriber(on_core))
                .start()
                .await
                .unwrap();
            let publishing = tokio::spawn(publish_core(publisher.clone(), n));
            let throughput = wait_done(n).await;
            publishing.await.unwrap();
            app.shutdown().await.unwrap();
            throughput
        }
    };
    broker.shutdown().await.ok();
    publisher.drain().await.ok();
    throughput
}

/// Fills the bench stream with `n` copies of the body (fresh stream).
async fn fill_stream(url: &str, n: u64) {
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let _ = js.delete_stream(STREAM).await;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: STREAM.to_owned(),
        subjects: vec![JS_SUBJECT.to_owned()],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut acks = Vec::with_capacity(1000);
    for _ in 0..n {
        acks.push(
            js.publish(JS_SUBJECT, Bytes::from_static(BODY))
                .await
                .unwrap(),
        );
        if acks.len() == 1000 {
            for ack in acks.drain(..) {
                ack.await.unwrap();
            }
        }
    }
    for ack in acks {
        ack.await.unwrap();
    }
    client.drain().await.ok();
}

async fn drop_consumer(url: &str) {
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let _ = js.delete_consumer_from_stream(DURABLE, STREAM).await;
    client.drain().await.ok();
}

async fn jetstream_round(url: &str, variant: Variant, n: u64) -> Round {
    drop_consumer(url).await;
    reset(n);
    let broker = NatsBroker::new(Config::new(url));
    broker.connect().await.unwrap();
    let throughput = match variant {
        Variant::Raw => {
            let client = broker.client().unwrap().clone();
            let js = async_nats::jetstream::new(client.clone());
            let stream = js.get_stream(STREAM).await.unwrap();
            let consumer = stream
                .get_or_create_consumer(
                    DURABLE,
                    pull::Config {
                        durable_name: Some(DURABLE.to_owned()),
                        filter_subject: JS_SUBJECT.to_owned(),
                        ack_policy: AckPolicy::Explicit,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let mut messages = consumer
                .stream()
                .max_messages_per_batch(ruststream_nats::DEFAULT_BATCH)
                .messages()
                .await
                .unwrap();
            let consume = tokio::spawn(async move {
                for _ in 0..n {
                    let message = messages.next().await.unwrap().unwrap();
                    handle(&message.payload);
                    message.ack().await.unwrap();
                }
            });
            let throughput = wait_done(n).await;
            consume.await.unwrap();
            throughput
        }
        Variant::Crate => {
            let mut sub = NatsSource::new(JS_SUBJECT)
                .stream(STREAM)
                .durable(DURABLE)
                .subscribe(&broker)
                .await
                .unwrap();
            let consume = tokio::spawn(async move {
                let mut stream = std::pin::pin!(sub.stream());
                for _ in 0..n {
                    let message = stream.next().await.unwrap().unwrap();
                    handle(message.payload());
                    message.ack().await.unwrap();
                }
            });
            let throughput = wait_done(n).await;
            consume.await.unwrap();
            throughput
        }
        Variant::Framework => {
            let app = App::new("bench")
                .broker(broker.clone(), Router::new().subscriber(on_jetstream))
                .start()
                .await
                .unwrap();
            let throughput = wait_done(n).await;
            app.shutdown().await.unwrap();
            throughput
        }
    };
    broker.shutdown().await.ok();
    throughput
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn report(title: &str, n: u64, results: &[Vec<Round>; 3]) {
    println!(
        "\n{title} ({n} messages per round, {} rounds, interleaved)",
        results.iter().map(Vec::len).max().unwrap_or(0)
    );
    let throughputs = |rounds: &[Round]| rounds.iter().map(|r| r.throughput).collect::<Vec<_>>();
    let cpu = |rounds: &[Round]| {
        rounds
            .iter()
            .map(|r| r.cpu_ns_per_message)
            .collect::<Vec<_>>()
    };
    // Ratios are to raw's medians; with `VARIANT` set to another loop, to that loop's.
    let base = results
        .iter()
        .find(|rounds| !rounds.is_empty())
        .expect("a loop ran");
    let raw = median(&mut throughputs(base));
    let raw_cpu = median(&mut cpu(base));
    for (variant, rounds) in VARIANTS.iter().zip(results.iter()) {
        if rounds.is_empty() {
            continue;
        }
        let mut samples = throughputs(rounds);
        let med = median(&mut samples);
        let med_cpu = median(&mut cpu(rounds));
        let all: Vec<String> = rounds
            .iter()
            .map(|r| format!("{:.0}", r.throughput))
            .collect();
        println!(
            "  {:<40} median {:>9.0} msg/s  ratio to raw {:.3}  (rounds: {})",
            variant.name(),
            med,
            med / raw,
            all.join(", ")
        );
        println!(
            "  {:<40} median {:>9.0} CPU ns/msg, raw's / this {:.3}",
            "",
            med_cpu,
            raw_cpu / med_cpu,
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |name: &str| which.is_empty() || which.iter().any(|w| name.contains(w.as_str()));
    if async_nats::connect(url.as_str()).await.is_err() {
        eprintln!("SKIPPED nats_throughput: no NATS server at {url}");
        return;
    }
    let rounds = env_u64("ROUNDS", 5);
    let only = std::env::var("VARIANT").ok().map(|name| {
        VARIANTS
            .into_iter()
            .find(|v| v.key() == name)
            .unwrap_or_else(|| panic!("VARIANT is one of raw, crate, framework, not `{name}`"))
    });

    if wants("core") {
        let n = env_u64("CORE_MESSAGES", 200_000);
        let mut results: [Vec<Round>; 3] = Default::default();
        for round in 0..rounds {
            for k in 0..3 {
                let index = (k + round as usize) % 3;
                if only.is_some_and(|only| only != VARIANTS[index]) {
                    continue;
                }
                results[index].push(core_round(&url, VARIANTS[index], n).await);
            }
        }
        report("NATS core", n, &results);
    }
    if wants("jetstream") {
        let n = env_u64("JS_MESSAGES", 20_000);
        fill_stream(&url, n).await;
        let mut results: [Vec<Round>; 3] = Default::default();
        for round in 0..rounds {
            for k in 0..3 {
                let index = (k + round as usize) % 3;
                if only.is_some_and(|only| only != VARIANTS[index]) {
                    continue;
                }
                results[index].push(jetstream_round(&url, VARIANTS[index], n).await);
            }
        }
        report(
            "JetStream (durable pull consumer, acks queued as `Message::ack` does)",
            n,
            &results,
        );
        let client = async_nats::connect(url.as_str()).await.unwrap();
        let _ = async_nats::jetstream::new(client.clone())
            .delete_stream(STREAM)
            .await;
        client.drain().await.ok();
    }
}
