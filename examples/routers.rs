//! Routing and composition: router prefixes, nested routers, a consumer group, and two
//! brokers in one app that publish to each other.
//!
//! `cargo run -p ruststream-examples --example routers`
//!
//! The `shop` broker has a `shop.` router with two nested routers, `orders.` and
//! `payments.`; the `warehouse` broker (a second, separate server) has its own router. A
//! placed order is paid on the shop, reserved on the warehouse, and the reservation is
//! confirmed back on the shop. Two instances of the reservation handler share the work as
//! a consumer group.
//!
//! Both brokers are memory brokers here, so each handler reaches the one it wants through
//! a named producer in the app's state (`Shop`, `Warehouse`). With brokers of different
//! types, a handler takes the other broker's producer as an argument
//! (`producer: Producer<NatsBroker>`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ruststream::BoxError;
use ruststream::memory::{MemoryBroker, MemorySource};
use ruststream::runtime::{App, Producer, Router, State, SubscriberDef, handler_fn};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: u64,
    item: String,
}

/// Publishes to the shop broker, from any handler.
struct Shop {
    producer: Producer<MemoryBroker>,
}

/// Publishes to the warehouse broker, from any handler.
struct Warehouse {
    producer: Producer<MemoryBroker>,
}

/// Counts confirmed orders; `main` waits for all of them.
#[derive(Default)]
struct Confirmed {
    count: AtomicU32,
    all: Notify,
}

const ORDERS: u32 = 4;

/// The service on its two brokers, without its state: what its AsyncAPI document shows.
pub(crate) fn app(shop: MemoryBroker, warehouse: MemoryBroker) -> App {
    let orders = Router::with_prefix("orders.")
        .subscriber(
            SubscriberDef::new(
                "placed",
                handler_fn(|order: Order, shop: State<Shop>| async move {
                    println!("shop.orders.placed: order {} for {}", order.id, order.item);
                    shop.producer
                        .publish("shop.payments.requested", &order)
                        .await
                }),
            )
            .name("place order"),
        )
        .subscriber(
            SubscriberDef::new(
                "reserved",
                handler_fn(|order: Order, confirmed: State<Confirmed>| async move {
                    println!("shop.orders.reserved: order {} confirmed", order.id);
                    if confirmed.count.fetch_add(1, Ordering::SeqCst) + 1 == ORDERS {
                        confirmed.all.notify_one();
                    }
                }),
            )
            .name("confirm order"),
        );
    let payments = Router::with_prefix("payments.").subscriber(
        SubscriberDef::new(
            "requested",
            handler_fn(|order: Order, warehouse: State<Warehouse>| async move {
                println!("shop.payments.requested: order {} paid", order.id);
                warehouse
                    .producer
                    .publish("warehouse.reserve", &order)
                    .await
            }),
        )
        .name("take payment"),
    );
    let shop_router = Router::with_prefix("shop.")
        .include(orders)
        .include(payments);

    // Two members of the `reservers` group share the reservations, one message each.
    let reserve = |member: &'static str| {
        SubscriberDef::new(
            MemorySource::new("reserve").group("reservers"),
            handler_fn(move |order: Order, shop: State<Shop>| async move {
                println!(
                    "warehouse.reserve ({member}): {} reserved for order {}",
                    order.item, order.id
                );
                shop.producer.publish("shop.orders.reserved", &order).await
            }),
        )
        .name(format!("reserve ({member})"))
    };
    let warehouse_router = Router::with_prefix("warehouse.")
        .subscriber(reserve("member 1"))
        .subscriber(reserve("member 2"));

    App::new("routers")
        .state(Shop {
            producer: Producer::new(shop.clone()),
        })
        .state(Warehouse {
            producer: Producer::new(warehouse.clone()),
        })
        .broker(shop, shop_router)
        .broker(warehouse, warehouse_router)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let shop = MemoryBroker::new();
    let warehouse = MemoryBroker::new(); // another server: a second broker of the app

    let confirmed = Arc::new(Confirmed::default());
    let app = app(shop.clone(), warehouse.clone()).state_arc(Arc::clone(&confirmed));

    for broker in app.describe().brokers {
        for subscriber in broker.subscribers {
            println!(
                "registered: `{}` on `{}`",
                subscriber.handler, subscriber.destination
            );
        }
    }
    let running = app.start().await?;

    let client = Producer::new(shop);
    for (id, item) in [(1, "lamp"), (2, "desk"), (3, "chair"), (4, "rug")] {
        let order = Order {
            id,
            item: item.into(),
        };
        client.publish("shop.orders.placed", &order).await?;
    }
    if tokio::time::timeout(Duration::from_secs(5), confirmed.all.notified())
        .await
        .is_err()
    {
        println!("not every order was confirmed in time");
    }
    running.shutdown().await?;
    println!("stopped cleanly");
    Ok(())
}
