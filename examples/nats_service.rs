//! A shop service on NATS, written as `app(broker: NatsBroker) -> App`: `main` runs it
//! against a server, and its tests (`tests/nats_service.rs`) run the same function
//! under `TestApp` twice, in process (`NatsBroker::in_process()`) and against a live
//! server (`NatsBroker::new(Config::new(url))`).
//!
//! Needs a NATS server on 127.0.0.1:4222 (`nats-server -a 127.0.0.1 -p 4222`):
//! `cargo run -p ruststream-examples --example nats_service`

use ruststream::runtime::{App, Router, Settle};
use ruststream::subscriber;
use ruststream_nats::{Config, NatsBroker, NatsSource};
use serde::{Deserialize, Serialize};

/// An order placed in a region (`shop.orders.<region>.placed`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Order {
    pub(crate) id: u64,
    pub(crate) amount: f64,
}

/// What billing an order gives: the answer to a request, also sent to
/// `shop.receipts.issued`.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Receipt {
    pub(crate) id: u64,
    pub(crate) total: f64,
}

/// A refund asked for (`shop.refunds.<reason>`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Refund {
    pub(crate) order: u64,
    pub(crate) amount: f64,
}

/// Bills each order once per queue group (run the service twice and each order is billed
/// once), with VAT.
#[subscriber(
    NatsSource::new("shop.orders.*.placed").queue_group("shop-billing"),
    name = "bill",
    publish_to = "shop.receipts.issued"
)]
async fn bill(order: Order) -> Receipt {
    Receipt {
        id: order.id,
        total: (order.amount * 1.2 * 100.0).round() / 100.0,
    }
}

/// Accepts refunds of a positive amount; drops the others (nothing to refund).
#[subscriber(NatsSource::new("shop.refunds.>").queue_group("shop-refunds"), name = "refund")]
async fn refund(asked: Refund) -> Settle {
    if asked.amount > 0.0 {
        println!("refund of {} for order {}", asked.amount, asked.order);
        Settle::Ack
    } else {
        Settle::Drop
    }
}

/// The whole service, on whichever `NatsBroker` it is given.
pub(crate) fn app(broker: NatsBroker) -> App {
    App::new("shop").broker(broker, Router::new().subscriber(bill).subscriber(refund))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let broker = NatsBroker::new(Config::new("nats://127.0.0.1:4222").name("shop"));
    // Runs until SIGINT/SIGTERM, then drains in-flight handlers and closes the connection.
    app(broker).run().await?;
    Ok(())
}
