//! An order service written with `#[subscriber]` and `#[ruststream::app]`, on the embedded
//! memory broker.
//!
//! ```text
//! cargo run -p ruststream-examples --example macros -- run
//! cargo run -p ruststream-examples --example macros -- asyncapi gen --format yaml
//! cargo run -p ruststream-examples --example macros -- --help
//! ```
//!
//! `run` starts the service; once it is up, a startup hook publishes a few orders (one of
//! them poison, which reaches the dead letter after three attempts) and asks for a quote.
//! Ctrl-C stops it gracefully.

use std::sync::Mutex;
use std::time::Duration;

use ruststream::memory::{MemoryBroker, MemorySource};
use ruststream::runtime::{App, Producer, Raw, Router, State};
use ruststream::{BoxError, Headers, subscriber};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

// `JsonSchema` documents the type in the AsyncAPI document (`asyncapi gen`).
/// An order placed by a customer.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct Order {
    /// The order's number.
    id: u64,
    /// What was ordered.
    name: String,
    /// What it costs, in euros.
    amount: f64,
}

/// The price of an order.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct Quote {
    /// The order's number.
    id: u64,
    /// The price, in euros.
    price: f64,
}

/// The running total of booked orders.
#[derive(Default)]
struct Ledger {
    total: Mutex<f64>,
}

/// Books each created order; an order with a negative amount fails, is retried, and after
/// three attempts goes to `orders.dead`.
#[subscriber(
    "orders.created",
    workers = 4,
    on_error = Retry,
    max_attempts = 3,
    dead_letter = "orders.dead"
)]
async fn book_order(order: Order, ledger: State<Ledger>) -> Result<(), String> {
    if order.amount < 0.0 {
        return Err(format!("order {} has a negative amount", order.id));
    }
    let mut total = ledger.total.lock().map_err(|error| error.to_string())?;
    *total += order.amount;
    println!(
        "booked order {} ({}) for {:.2}; total {:.2}",
        order.id, order.name, order.amount, *total
    );
    Ok(())
}

/// Prices an order: the answer goes to the requester and to `pricing.quoted`.
#[subscriber("pricing.quote", publish_to = "pricing.quoted")]
async fn quote_order(order: Order) -> Quote {
    Quote {
        id: order.id,
        price: (order.amount * 1.2 * 100.0).round() / 100.0,
    }
}

/// Reports what reached the dead letter, and why.
#[subscriber(MemorySource::new("orders.dead").group("operations"))]
async fn report_dead_letter(payload: Raw<'_>, headers: &Headers) {
    let reason = headers
        .get_str(ruststream::runtime::DEAD_LETTER_REASON_HEADER)
        .unwrap_or("unknown");
    println!("dead letter ({} bytes): {reason}", payload.len());
}

/// Publishes a few orders and asks for a quote, once the service is up.
async fn demo_traffic(producer: Producer<MemoryBroker>) -> Result<(), BoxError> {
    for (id, name, amount) in [(1, "tea", 4.5), (2, "cake", 12.0), (3, "refund", -3.0)] {
        let order = Order {
            id,
            name: name.to_owned(),
            amount,
        };
        producer.publish("orders.created", &order).await?;
    }
    let order = Order {
        id: 4,
        name: "coffee".to_owned(),
        amount: 3.2,
    };
    let quote: Quote = producer
        .message("pricing.quote", &order)
        .request(Duration::from_secs(5))
        .await?;
    println!("quote for order {}: {:.2}", quote.id, quote.price);
    println!("the service is running; press Ctrl-C to stop it");
    Ok(())
}

/// The service: what `run` starts and `asyncapi gen` documents.
#[ruststream::app]
pub(crate) fn app() -> App {
    let broker = MemoryBroker::new();
    let producer = Producer::new(broker.clone());
    let router = Router::new()
        .subscriber(book_order)
        .subscriber(quote_order)
        .subscriber(report_dead_letter);
    App::new("orders")
        .version(env!("CARGO_PKG_VERSION"))
        .description("Books orders and prices them on request.")
        .state(Ledger::default())
        .broker(broker, router)
        .after_startup(move || demo_traffic(producer))
}
