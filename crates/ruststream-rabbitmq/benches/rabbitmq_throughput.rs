//! Consume-and-ack throughput over a real RabbitMQ server (SPEC §5), three loops side by
//! side, interleaved, same workload: a durable classic queue filled with N persistent
//! messages carrying the SPEC §5 order; the consumer (prefetch 256) decodes each into
//! `Order`, reads every field, and acks it in the same place, after the work, as a user of
//! lapin writes it: `delivery.ack(BasicAckOptions::default()).await`.
//!
//! - `raw`: lapin alone (`basic_qos`, `basic_consume`, the `Consumer` stream, `ack`);
//! - `crate`: this crate's `RabbitSubscriber` stream and `RabbitMessage::ack`, no runtime;
//! - `framework`: an `App` with a handler taking `Order`, default settlement.
//!
//! ```text
//! cargo bench -p ruststream-rabbitmq --bench rabbitmq_throughput
//! ```
//!
//! Environment: `RABBITMQ_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`),
//! `ROUNDS` (default 5), `MESSAGES` (default 50000), `VARIANT` (`raw`, `crate` or
//! `framework`: that loop alone), `PHASE` (`fill`: only fill the queue; `consume`: only
//! consume what is there, as under callgrind, where the filling must not be counted).
//!
//! Throughput is timed from the first message handled to the last, so connecting and
//! subscribing are left out. Each round also reports the CPU time of the process per
//! message over the same span (summed over its threads from `/proc/self/task/*/schedstat`),
//! which a busy machine disturbs less than throughput.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use ruststream::runtime::{App, Router, SubscriberDef, handler_fn};
use ruststream::{Broker, IncomingMessage, Subscriber, SubscriptionSource};
use ruststream_rabbitmq::{Config, RabbitBroker, RabbitQueue};
use tokio::sync::Notify;

/// The reference body of SPEC §5.
const BODY: &[u8] = br#"{"id":10000023,"name":"order-10000023","amount":123.25}"#;
const QUEUE: &str = "rsbench.orders";
const PREFETCH: u16 = 256;

/// The reference message type of SPEC §5.
#[derive(Debug, serde::Deserialize)]
struct Order {
    id: u64,
    name: String,
    amount: f64,
}

/// The work each loop does per message: every field read.
fn work(order: &Order) {
    std::hint::black_box((order.id, order.name.len(), order.amount));
}

/// A wall-clock time and the CPU time the process had used by then.
#[derive(Debug, Clone, Copy)]
struct Mark {
    at: Instant,
    cpu_ns: u64,
}

impl Mark {
    fn now() -> Self {
        Self {
            at: Instant::now(),
            cpu_ns: cpu_ns(),
        }
    }
}

/// The CPU time of every thread of the process: the first field of each thread's
/// `schedstat`, in nanoseconds (0 where the file is missing).
fn cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Counts handled messages; marks the first and the last.
struct Tally {
    target: u64,
    handled: AtomicU64,
    marks: Mutex<(Option<Mark>, Option<Mark>)>,
    done: Notify,
}

impl Tally {
    fn new(target: u64) -> Self {
        Self {
            target,
            handled: AtomicU64::new(0),
            marks: Mutex::new((None, None)),
            done: Notify::new(),
        }
    }

    fn one(&self) {
        let n = self.handled.fetch_add(1, Ordering::Relaxed) + 1;
        if n == 1 {
            self.marks.lock().unwrap().0 = Some(Mark::now());
        }
        if n == self.target {
            self.marks.lock().unwrap().1 = Some(Mark::now());
            self.done.notify_one();
        }
    }

    fn finished(&self) -> bool {
        self.handled.load(Ordering::Relaxed) >= self.target
    }

    /// Messages per second and CPU nanoseconds per message between the marks.
    fn result(&self) -> (f64, f64) {
        let (Some(first), Some(last)) = *self.marks.lock().unwrap() else {
            return (0.0, 0.0);
        };
        // The first message is the start mark: target - 1 intervals.
        let span = (self.target - 1).max(1) as f64;
        let seconds = last.at.duration_since(first.at).as_secs_f64().max(1e-9);
        (span / seconds, (last.cpu_ns - first.cpu_ns) as f64 / span)
    }
}

async fn connection(url: &str) -> Connection {
    Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("connect to RabbitMQ")
}

/// Declares the queue (durable, classic) and publishes `n` persistent messages, confirms
/// pipelined.
async fn fill(url: &str, n: u64) {
    let connection = connection(url).await;
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_declare(
            QUEUE.into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let properties = BasicProperties::default().with_delivery_mode(2);
    for _ in 0..n {
        drop(
            channel
                .basic_publish(
                    "".into(),
                    QUEUE.into(),
                    BasicPublishOptions::default(),
                    BODY,
                    properties.clone(),
                )
                .await
                .unwrap(),
        );
    }
    channel.wait_for_confirms().await.unwrap();
    connection.close(200, "OK".into()).await.ok();
}

/// Deletes the bench's queue.
async fn remove_queue(url: &str) {
    let connection = connection(url).await;
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_delete(QUEUE.into(), lapin::options::QueueDeleteOptions::default())
        .await
        .ok();
    connection.close(200, "OK".into()).await.ok();
}

async fn raw(url: &str, tally: &Tally) {
    let connection = connection(url).await;
    let channel = connection.create_channel().await.unwrap();
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = channel
        .basic_consume(
            QUEUE.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery.unwrap();
        let order: Order = serde_json::from_slice(&delivery.data).unwrap();
        work(&order);
        delivery.ack(BasicAckOptions::default()).await.unwrap();
        tally.one();
        if tally.finished() {
            break;
        }
    }
    drop(consumer);
    connection.close(200, "OK".into()).await.ok();
}

fn config(url: &str) -> Config {
    Config::new(url).connection_name("rsbench")
}

async fn crate_loop(url: &str, tally: &Tally) {
    let broker = RabbitBroker::new(config(url));
    broker.connect().await.unwrap();
    let mut subscriber = RabbitQueue::new(QUEUE)
        .prefetch(PREFETCH)
        .subscribe(&broker)
        .await
        .unwrap();
    let mut messages = std::pin::pin!(subscriber.stream());
    while let Some(message) = messages.next().await {
        let message = message.unwrap();
        let order: Order = serde_json::from_slice(message.payload()).unwrap();
        work(&order);
        message.ack().await.unwrap();
        tally.one();
        if tally.finished() {
            break;
        }
    }
    broker.shutdown().await.ok();
}

async fn framework(url: &str, tally: &'static Tally) {
    let handler = handler_fn(move |order: Order| async move {
        work(&order);
        tally.one();
    });
    let router = Router::new().subscriber(SubscriberDef::new(
        RabbitQueue::new(QUEUE).prefetch(PREFETCH),
        handler,
    ));
    let app = App::new("rsbench")
        .broker(RabbitBroker::new(config(url)), router)
        .start()
        .await
        .unwrap();
    let done = tally.done.notified();
    if !tally.finished() {
        done.await;
    }
    app.shutdown().await.ok();
}

async fn round(url: &str, variant: &str, n: u64) -> (f64, f64) {
    let tally: &'static Tally = Box::leak(Box::new(Tally::new(n)));
    let run = async {
        match variant {
            "raw" => raw(url, tally).await,
            "crate" => crate_loop(url, tally).await,
            _ => framework(url, tally).await,
        }
    };
    if tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .is_err()
    {
        panic!(
            "{variant}: {} of {n} messages within 600 s",
            tally.handled.load(Ordering::Relaxed)
        );
    }
    tally.result()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let url = std::env::var("RABBITMQ_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let rounds = env("ROUNDS", 5);
    let n = env("MESSAGES", 50_000);
    let phase = std::env::var("PHASE").unwrap_or_default();
    if phase == "fill" {
        fill(&url, n).await;
        return;
    }
    let variants: Vec<String> = match std::env::var("VARIANT") {
        Ok(variant) => vec![variant],
        Err(_) => ["raw", "crate", "framework"].map(String::from).into(),
    };
    let mut results: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); variants.len()];
    for r in 0..rounds {
        // The order rotates each round, so no loop always runs first.
        for k in 0..variants.len() {
            let i = (k + r as usize) % variants.len();
            if phase != "consume" {
                fill(&url, n).await;
            }
            let (rate, cpu) = round(&url, &variants[i], n).await;
            eprintln!(
                "round {r} {:>9}: {rate:>10.0} msg/s {cpu:>8.0} CPU ns/msg",
                variants[i]
            );
            results[i].0.push(rate);
            results[i].1.push(cpu);
        }
    }
    if phase.is_empty() {
        remove_queue(&url).await;
    }
    let raw_rate = median(&mut results[0].0.clone());
    let raw_cpu = median(&mut results[0].1.clone());
    println!("{n} messages per round, {rounds} rounds, medians:");
    println!(
        "| loop | throughput | / {} | CPU ns/msg | {}'s CPU / this |",
        variants[0], variants[0]
    );
    println!("|---|---:|---:|---:|---:|");
    for (variant, (rates, cpus)) in variants.iter().zip(results.iter_mut()) {
        let (rate, cpu) = (median(rates), median(cpus));
        println!(
            "| {variant} | {rate:.0} msg/s | {:.3} | {cpu:.0} | {:.3} |",
            rate / raw_rate,
            raw_cpu / cpu
        );
    }
}
