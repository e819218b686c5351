//! The tutorial's service (`examples/tutorial.rs`), run in process with `TestApp`: what
//! `docs/tutorial.md` shows in its testing step.
#![allow(dead_code)]

#[path = "../tutorial.rs"]
mod tutorial;

// ANCHOR: tests
use std::time::Duration;

use ruststream::memory::MemoryBroker;
use ruststream::runtime::Settlement;
use ruststream::testing::TestApp;

use tutorial::{Order, Quote, service};

#[tokio::test]
async fn an_order_is_booked_and_acked() {
    let broker = MemoryBroker::new();
    let app = TestApp::start(service(broker.clone()), broker)
        .await
        .unwrap();

    // Returns once the handler has run and the message is settled.
    app.publish(
        "orders.created",
        &Order {
            id: 1,
            amount: 10.0,
        },
    )
    .await
    .unwrap();

    assert_eq!(app.received("book_order")[0].decoded::<Order>().id, 1);
    assert_eq!(app.settlements("book_order"), [Settlement::Acked]);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_quote_answers_the_request() {
    let broker = MemoryBroker::new();
    let app = TestApp::start(service(broker.clone()), broker)
        .await
        .unwrap();

    let order = Order { id: 2, amount: 5.0 };
    let quote: Quote = app
        .request("pricing.quote", &order, Duration::from_secs(1))
        .await
        .unwrap();

    assert_eq!(quote, Quote { id: 2, price: 6.0 });
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_order_without_an_amount_ends_in_the_dead_letter() {
    let broker = MemoryBroker::new();
    let app = TestApp::start(service(broker.clone()), broker)
        .await
        .unwrap();

    // Waits through the three calls and the dead letter's handler.
    app.publish("orders.created", &Order { id: 3, amount: 0.0 })
        .await
        .unwrap();

    assert_eq!(app.settlements("book_order"), [Settlement::DeadLettered]);
    assert_eq!(app.published("orders.dead").len(), 1);
    assert_eq!(app.received("report_dead_letter").len(), 1);
    app.shutdown().await.unwrap();
}
// ANCHOR_END: tests
