//! The README's demo: an order service on the embedded memory broker.
//!
//! `cargo run -p ruststream-examples --example demo`
//!
//! Handlers are plain async functions marked `#[subscriber]`. Once the service is up, a
//! client publishes orders and asks for a quote. One order fails its first attempt and is
//! retried after a delay; one is poison and reaches the dead letter after three attempts.
//! When every order is settled the service stops gracefully, as it would on Ctrl-C or
//! SIGTERM: intake stops, in-flight handlers finish, the broker closes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ruststream::memory::MemoryBroker;
use ruststream::runtime::{App, Message, Producer, Router, Settle, State};
use ruststream::{BoxError, subscriber};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: u64,
    item: String,
    amount: f64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Quote {
    id: u64,
    price: f64,
}

/// How many orders are settled, one way or another; the demo stops when all are.
struct Progress {
    settled: AtomicU32,
    all_settled: Notify,
}

const ORDERS: u32 = 4;

impl Progress {
    fn settle(&self) {
        if self.settled.fetch_add(1, Ordering::SeqCst) + 1 == ORDERS {
            self.all_settled.notify_one();
        }
    }
}

/// Fulfils an order. The "gift card" order fails its first attempt (a flaky stock check)
/// and asks to be retried in 200 ms; "mystery box" always fails and is dead-lettered.
#[subscriber(
    "orders.created",
    workers = 2,
    max_attempts = 3,
    dead_letter = "orders.dead"
)]
async fn fulfil_order(
    order: Order,
    message: Message<'_>,
    progress: State<Progress>,
) -> Result<Settle, String> {
    let attempt = message.attempt();
    if order.item == "mystery box" {
        println!(
            "  order {} ({}): attempt {attempt} failed",
            order.id, order.item
        );
        return Err(format!("nobody knows what is in a {}", order.item));
    }
    if order.item == "gift card" && attempt == 1 {
        println!(
            "  order {} ({}): stock check timed out, retrying in 200 ms",
            order.id, order.item
        );
        return Ok(Settle::RetryAfter(Duration::from_millis(200)));
    }
    println!(
        "  order {} ({}) for {:.2} fulfilled on attempt {attempt}",
        order.id, order.item, order.amount
    );
    progress.settle();
    Ok(Settle::Ack)
}

/// Answers quote requests: the returned value is the reply.
#[subscriber("pricing.quote")]
async fn quote_order(order: Order) -> Quote {
    Quote {
        id: order.id,
        price: (order.amount * 1.2 * 100.0).round() / 100.0,
    }
}

/// Watches the dead letter.
#[subscriber("orders.dead")]
async fn dead_letters(order: Order, message: Message<'_>, progress: State<Progress>) {
    let reason = message
        .headers()
        .get_str(ruststream::runtime::DEAD_LETTER_REASON_HEADER)
        .unwrap_or("?");
    println!(
        "  dead letter: order {} ({}): {reason}",
        order.id, order.item
    );
    progress.settle();
}

/// The client side: publishes the orders and asks for a quote.
async fn client(producer: Producer<MemoryBroker>) -> Result<(), BoxError> {
    println!("client: publishing {ORDERS} orders");
    let orders = [
        (1, "keyboard", 49.9),
        (2, "gift card", 25.0),
        (3, "mystery box", 9.99),
        (4, "monitor", 189.0),
    ];
    for (id, item, amount) in orders {
        producer
            .publish(
                "orders.created",
                &Order {
                    id,
                    item: item.into(),
                    amount,
                },
            )
            .await?;
    }
    let order = Order {
        id: 5,
        item: "desk".into(),
        amount: 240.0,
    };
    let quote: Quote = producer
        .message("pricing.quote", &order)
        .request(Duration::from_secs(2))
        .await?;
    println!("client: quote for order {} is {:.2}", quote.id, quote.price);
    Ok(())
}

/// The service on `broker`: its handlers (what its AsyncAPI document shows); `main` adds
/// the state and the client.
pub(crate) fn app(broker: MemoryBroker) -> App {
    App::new("orders-demo").broker(
        broker,
        Router::new()
            .subscriber(fulfil_order)
            .subscriber(quote_order)
            .subscriber(dead_letters),
    )
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let broker = MemoryBroker::new();
    let progress = Arc::new(Progress {
        settled: AtomicU32::new(0),
        all_settled: Notify::new(),
    });
    let producer = Producer::new(broker.clone());
    let app = app(broker)
        .state_arc(Arc::clone(&progress))
        .after_startup(|| async {
            println!("service started");
            Ok::<_, BoxError>(())
        })
        .after_startup(move || client(producer))
        .on_shutdown(|| async {
            println!("shutting down: intake stops, in-flight handlers finish, the broker closes");
            Ok::<_, BoxError>(())
        });
    // Serve until every order is settled (or Ctrl-C), then stop gracefully.
    app.run_until(async move {
        tokio::select! {
            () = progress.all_settled.notified() => {}
            _ = tokio::signal::ctrl_c() => println!("interrupted"),
        }
    })
    .await?;
    println!("stopped cleanly");
    Ok(())
}
