//! An order service on core NATS: a wildcard subscriber that sees every order, a queue
//! group that bills each order once, and a request answered by a handler's return value.
//!
//! Needs a NATS server on 127.0.0.1:4222 (`nats-server -a 127.0.0.1 -p 4222`):
//! `cargo run -p ruststream-examples --example nats_core`

use std::time::Duration;

use ruststream::runtime::{App, Producer, Router};
use ruststream::subscriber;
use ruststream_nats::{Config, NatsBroker, NatsSource};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: u64,
    amount: f64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Receipt {
    id: u64,
    total: f64,
}

/// Every order of every region, to each instance of the service.
#[subscriber("orders.*.created")]
async fn audit(order: Order) {
    println!("audit: order {} ({})", order.id, order.amount);
}

/// Each order once per queue group; the receipt answers a request.
#[subscriber(NatsSource::new("orders.*.created").queue_group("billing"))]
async fn bill(order: Order) -> Receipt {
    println!("bill: order {}", order.id);
    Receipt {
        id: order.id,
        total: order.amount * 1.2,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let broker = NatsBroker::new(Config::new("nats://127.0.0.1:4222").name("nats-core-example"));
    let app = App::new("orders")
        .broker(
            broker.clone(),
            Router::new().subscriber(audit).subscriber(bill),
        )
        .start()
        .await
        .map_err(|e| format!("{e} (is nats-server running on 127.0.0.1:4222?)"))?;

    let producer = Producer::new(broker);
    producer
        .publish(
            "orders.eu.created",
            &Order {
                id: 1,
                amount: 10.0,
            },
        )
        .await?;
    let receipt: Receipt = producer
        .message(
            "orders.us.created",
            &Order {
                id: 2,
                amount: 20.0,
            },
        )
        .request(Duration::from_secs(2))
        .await?;
    println!(
        "request answered: receipt {} total {}",
        receipt.id, receipt.total
    );

    tokio::time::sleep(Duration::from_millis(200)).await;
    app.shutdown().await?;
    Ok(())
}
