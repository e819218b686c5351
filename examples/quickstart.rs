//! The shortest complete service: one handler on the embedded memory broker.
//!
//! ```text
//! cargo run -p ruststream-examples --example quickstart -- run
//! cargo run -p ruststream-examples --example quickstart -- asyncapi gen
//! ```

use ruststream::memory::MemoryBroker;
use ruststream::runtime::{App, Router};
use ruststream::subscriber;
use serde::Deserialize;

/// An order placed by a customer.
#[derive(Debug, Deserialize)]
pub(crate) struct Order {
    id: u64,
    amount: f64,
}

/// Decoded from JSON, acked when it returns.
#[subscriber("orders.created")]
async fn handle_order(order: Order) {
    println!("order {} for {:.2}", order.id, order.amount);
}

/// The service: `run` starts it, `asyncapi gen` documents it.
#[ruststream::app]
pub(crate) fn app() -> App {
    App::new("quickstart").broker(MemoryBroker::new(), Router::new().subscriber(handle_order))
}
