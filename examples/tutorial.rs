//! The order service that `docs/tutorial.md` builds step by step: handlers, a reply,
//! retries and a dead letter, workers, metrics and an AsyncAPI document, on the memory
//! broker or, with `NATS_URL` set, on a live NATS server.
//!
//! ```text
//! cargo run -p ruststream-examples --example tutorial -- run --http 127.0.0.1:9000
//! NATS_URL=nats://127.0.0.1:4222 cargo run -p ruststream-examples --example tutorial -- run
//! ```
//!
//! `tests/tutorial.rs` runs the same service in process. The `ANCHOR` comments mark the
//! parts the tutorial shows.

// ANCHOR: imports
use std::time::Duration;

use ruststream::memory::MemoryBroker;
use ruststream::runtime::{App, Backoff, FailurePolicy, Raw, Router, RuntimeBroker};
use ruststream::{Headers, Subscribe, subscriber};
use ruststream_nats::{Config, NatsBroker};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
// ANCHOR_END: imports

// ANCHOR: types
/// An order placed by a customer.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Order {
    /// The order's number.
    pub(crate) id: u64,
    /// What it costs, in euros.
    pub(crate) amount: f64,
}

/// The price of an order.
#[derive(Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Quote {
    /// The order's number.
    pub(crate) id: u64,
    /// The price, in euros, taxes included.
    pub(crate) price: f64,
}
// ANCHOR_END: types

// ANCHOR: book_order
/// Books each created order, four at a time. An order without an amount fails: the
/// handler is called again, and after three calls the order goes to `orders.dead`.
#[subscriber(
    "orders.created",
    workers = 4,
    on_error = FailurePolicy::RetryInPlace {
        attempts: 3,
        backoff: Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1)),
    },
    dead_letter = "orders.dead"
)]
async fn book_order(order: Order) -> Result<(), String> {
    if order.amount <= 0.0 {
        return Err(format!("order {} has no amount", order.id));
    }
    println!("booked order {} for {:.2}", order.id, order.amount);
    Ok(())
}
// ANCHOR_END: book_order

// ANCHOR: quote_order
/// Prices an order: the returned quote answers the request.
#[subscriber("pricing.quote")]
async fn quote_order(order: Order) -> Quote {
    Quote {
        id: order.id,
        price: (order.amount * 1.2 * 100.0).round() / 100.0,
    }
}
// ANCHOR_END: quote_order

// ANCHOR: dead_letter
/// Reports what reached the dead letter, and why.
#[subscriber("orders.dead")]
async fn report_dead_letter(payload: Raw<'_>, headers: &Headers) {
    let reason = headers
        .get_str(ruststream::runtime::DEAD_LETTER_REASON_HEADER)
        .unwrap_or("unknown");
    println!("dead letter ({} bytes): {reason}", payload.len());
}
// ANCHOR_END: dead_letter

// ANCHOR: service
/// The service on any broker: `app` picks the real one, the tests an in-process one.
pub(crate) fn service<B>(broker: B) -> App
where
    B: RuntimeBroker + Subscribe<Subscriber: 'static>,
{
    let router = Router::new()
        .subscriber(book_order)
        .subscriber(quote_order)
        .subscriber(report_dead_letter);
    App::new("orders")
        .version(env!("CARGO_PKG_VERSION"))
        .description("Books orders and prices them on request.")
        .metrics()
        .broker(broker, router)
}
// ANCHOR_END: service

// ANCHOR: app
/// What `run` starts and `asyncapi gen` documents: on NATS when `NATS_URL` is set, else
/// on the embedded memory broker.
#[ruststream::app]
fn app() -> App {
    match std::env::var("NATS_URL") {
        Ok(url) => service(NatsBroker::new(Config::new(url))),
        Err(_) => service(MemoryBroker::new()),
    }
}
// ANCHOR_END: app
