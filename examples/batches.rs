//! A batch handler on the memory broker: readings arrive in batches, each settled alone.
//!
//! `cargo run -p ruststream-examples --example batches`

use std::time::Duration;

use ruststream::BoxError;
use ruststream::memory::MemoryBroker;
use ruststream::runtime::{App, Producer, Router, Settle, SubscriberDef, batch_handler_fn};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Reading {
    sensor: u32,
    value: f64,
}

/// The service on `broker`: what its AsyncAPI document shows.
pub(crate) fn app(broker: MemoryBroker) -> App {
    let readings = SubscriberDef::batch(
        "sensors.readings",
        batch_handler_fn(|readings: Vec<Reading>| async move {
            let total: f64 = readings
                .iter()
                .filter(|r| r.value >= 0.0)
                .map(|r| r.value)
                .sum();
            println!("batch of {}: total {total:.1}", readings.len());
            // One result per reading: a negative value is dropped, the rest acked.
            readings
                .iter()
                .map(|r| {
                    if r.value < 0.0 {
                        println!("  dropping sensor {}'s reading {}", r.sensor, r.value);
                        Settle::Drop
                    } else {
                        Settle::Ack
                    }
                })
                .collect::<Vec<_>>()
        }),
    )
    .max_messages(10)
    .max_wait(Duration::from_millis(20));
    App::new("sensors").broker(broker, Router::new().subscriber(readings))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let broker = MemoryBroker::new();
    let app = app(broker.clone()).start().await?;

    let producer = Producer::new(broker.clone());
    for i in 0..25u32 {
        let value = if i % 9 == 4 { -1.0 } else { f64::from(i) };
        producer
            .publish(
                "sensors.readings",
                &Reading {
                    sensor: i % 3,
                    value,
                },
            )
            .await?;
    }
    while broker.backlog() > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    app.shutdown().await?;
    Ok(())
}
