//! Consumption throughput over Mosquitto, three loops side by side, interleaved, same
//! workload: each message carries the small JSON order, which the consumer decodes into
//! `Order` and reads every field of, then (QoS 1) acknowledges, after the work.
//!
//! - `raw`: rumqttc alone (MQTT 5 event loop, manual acks);
//! - `crate`: this crate's `MqttSubscriber` stream and `MqttMessage::ack`, no runtime;
//! - `framework`: an `App` with a `#[subscriber]` handler (`Order` argument).
//!
//! ```text
//! cargo bench -p ruststream-mqtt --bench mqtt_throughput           # QoS 0 and QoS 1
//! cargo bench -p ruststream-mqtt --bench mqtt_throughput -- qos1   # QoS 1 only
//! ```
//!
//! Environment: `MQTT_HOST` (default `127.0.0.1`), `MQTT_PORT` (1883), `ROUNDS` (5),
//! `MESSAGES` (20000), `VARIANT` (`raw`, `crate` or `framework`: that loop alone, e.g.
//! under callgrind).
//!
//! A publisher on its own connection keeps at most 500 messages ahead of the consumer
//! (below Mosquitto's default queue of 1000 per client, so nothing is dropped at QoS 1).
//! Throughput is timed from the first message handled to the last.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use ruststream::runtime::{App, Router};
use ruststream::{
    Broker, IncomingMessage, OutgoingMessage, Publisher, Subscriber, SubscriptionSource, subscriber,
};
use ruststream_mqtt::{Config, MqttBroker, MqttSource, Protocol, Qos};

const BODY: &[u8] = br#"{"id":10000023,"name":"order-10000023","amount":123.25}"#;
const WINDOW: u64 = 500;

#[derive(Debug, serde::Deserialize)]
struct Order {
    id: u64,
    name: String,
    amount: f64,
}

fn work(payload: &[u8]) {
    let order: Order = serde_json::from_slice(payload).expect("an order");
    black_box((order.id, order.name.len(), order.amount));
}

static HANDLED: AtomicU64 = AtomicU64::new(0);
static FIRST: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);

fn handled() {
    if HANDLED.fetch_add(1, Ordering::Relaxed) == 0 {
        *FIRST.lock().unwrap() = Some(Instant::now());
    }
}

#[subscriber(MqttSource::new("rsbench/qos1").qos(Qos::AtLeastOnce), name = "bench1")]
async fn bench1(order: Order) {
    black_box((order.id, order.name.len(), order.amount));
    handled();
}

#[subscriber(MqttSource::new("rsbench/qos0").qos(Qos::AtMostOnce), name = "bench0")]
async fn bench0(order: Order) {
    black_box((order.id, order.name.len(), order.amount));
    handled();
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn config(client: &str) -> Config {
    Config::new(
        Protocol::V5,
        env("MQTT_HOST", "127.0.0.1"),
        env("MQTT_PORT", "1883").parse().unwrap(),
        client,
    )
}

/// Publishes `total` messages, at most `WINDOW` ahead of the consumer.
async fn publish(total: u64, topic: &'static str, qos: Qos) {
    let publisher =
        MqttBroker::new(config(&format!("rsbench-pub-{}", std::process::id())).publish_qos(qos));
    publisher.connect().await.unwrap();
    for sent in 0..total {
        while sent >= HANDLED.load(Ordering::Relaxed) + WINDOW {
            tokio::task::yield_now().await;
        }
        publisher
            .publish(OutgoingMessage::new(topic, BODY))
            .await
            .unwrap();
    }
    publisher.shutdown().await.unwrap();
}

async fn wait_for(total: u64) -> Duration {
    while HANDLED.load(Ordering::Relaxed) < total {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    FIRST.lock().unwrap().expect("a first message").elapsed()
}

async fn round(variant: &str, qos: Qos, total: u64) -> f64 {
    HANDLED.store(0, Ordering::Relaxed);
    *FIRST.lock().unwrap() = None;
    let topic = if qos == Qos::AtMostOnce {
        "rsbench/qos0"
    } else {
        "rsbench/qos1"
    };
    let client = format!("rsbench-sub-{}", std::process::id());
    let elapsed = match variant {
        "raw" => {
            let mut options = MqttOptions::new(
                client,
                env("MQTT_HOST", "127.0.0.1"),
                env("MQTT_PORT", "1883").parse().unwrap(),
            );
            options.set_manual_acks(true).set_receive_maximum(Some(100));
            let (client, mut event_loop) = AsyncClient::new(options, 10_000);
            let level = if qos == Qos::AtMostOnce {
                rumqttc::v5::mqttbytes::QoS::AtMostOnce
            } else {
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce
            };
            client.subscribe(topic, level).await.unwrap();
            loop {
                if let Event::Incoming(Packet::SubAck(_)) = event_loop.poll().await.unwrap() {
                    break;
                }
            }
            let publisher = tokio::spawn(publish(total, topic, qos));
            while HANDLED.load(Ordering::Relaxed) < total {
                if let Event::Incoming(Packet::Publish(message)) = event_loop.poll().await.unwrap()
                {
                    work(&message.payload);
                    client.try_ack(&message).unwrap();
                    handled();
                }
            }
            let elapsed = FIRST.lock().unwrap().unwrap().elapsed();
            client.disconnect().await.ok();
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while event_loop.poll().await.is_ok() {}
            })
            .await;
            publisher.await.unwrap();
            elapsed
        }
        "crate" => {
            let broker = MqttBroker::new(config(&client));
            broker.connect().await.unwrap();
            let mut subscriber = MqttSource::new(topic)
                .qos(qos)
                .subscribe(&broker)
                .await
                .unwrap();
            let publisher = tokio::spawn(publish(total, topic, qos));
            {
                let mut stream = subscriber.stream();
                while HANDLED.load(Ordering::Relaxed) < total {
                    let message = stream.next().await.unwrap().unwrap();
                    work(message.payload());
                    if let Err(message) = message.ack_now() {
                        message.ack().await.unwrap();
                    }
                    handled();
                }
            }
            let elapsed = FIRST.lock().unwrap().unwrap().elapsed();
            publisher.await.unwrap();
            drop(subscriber);
            broker.shutdown().await.unwrap();
            elapsed
        }
        _ => {
            let broker = MqttBroker::new(config(&client));
            let router = if qos == Qos::AtMostOnce {
                Router::new().subscriber(bench0)
            } else {
                Router::new().subscriber(bench1)
            };
            let app = App::new("bench")
                .broker(broker.clone(), router)
                .start()
                .await
                .unwrap();
            let publisher = tokio::spawn(publish(total, topic, qos));
            let elapsed = wait_for(total).await;
            publisher.await.unwrap();
            app.shutdown().await.unwrap();
            elapsed
        }
    };
    total as f64 / elapsed.as_secs_f64()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let rounds: usize = env("ROUNDS", "5").parse().unwrap();
    let total: u64 = env("MESSAGES", "20000").parse().unwrap();
    let variants: Vec<String> = match std::env::var("VARIANT") {
        Ok(variant) => vec![variant],
        Err(_) => ["raw", "crate", "framework"].map(str::to_owned).into(),
    };
    for (name, qos) in [("qos0", Qos::AtMostOnce), ("qos1", Qos::AtLeastOnce)] {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let mut results: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
        for _ in 0..rounds {
            for (index, variant) in variants.iter().enumerate() {
                results[index].push(round(variant, qos, total).await);
            }
        }
        let medians: Vec<f64> = results.iter_mut().map(|r| median(r)).collect();
        for (variant, value) in variants.iter().zip(&medians) {
            println!(
                "{name} {variant:>9}: {value:>9.0} msg/s (median of {rounds}, {total} messages each)"
            );
        }
        if variants.len() == 3 {
            println!("{name} framework / raw: {:.3}", medians[2] / medians[0]);
        }
    }
}
