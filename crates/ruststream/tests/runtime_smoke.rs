//! First end-to-end checks of the runtime on the memory broker.
#![cfg(feature = "testing")]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use ruststream::memory::{MemoryBroker, MemorySource};
use ruststream::prelude::*;
use ruststream::runtime::{
    App, FailurePolicy, Producer, Respond, Router, Settle, State, SubscriberDef, handler_fn,
};
use serde::{Deserialize, Serialize};
use support::{WAIT, dead_letter_reason, eventually, next_within};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Order {
    id: u64,
}

#[derive(Default)]
struct Seen(AtomicU32);

#[tokio::test]
async fn a_handler_receives_decoded_orders_and_replies() {
    let broker = MemoryBroker::new();
    let seen = Arc::new(Seen::default());
    let router = Router::new()
        .subscriber(SubscriberDef::new(
            "orders",
            handler_fn(|order: Order, seen: State<Seen>| async move {
                seen.0.0.fetch_add(order.id as u32, Ordering::SeqCst);
            }),
        ))
        .subscriber(SubscriberDef::new(
            "double",
            handler_fn(|order: Order| async move { Respond(Order { id: order.id * 2 }) }),
        ));
    let running = App::new("smoke")
        .state_arc(Arc::clone(&seen))
        .broker(broker.clone(), router)
        .start()
        .await
        .unwrap();
    let producer = Producer::new(broker.clone());
    producer.publish("orders", &Order { id: 3 }).await.unwrap();
    producer.publish("orders", &Order { id: 4 }).await.unwrap();
    eventually("orders 3 and 4 handled", || {
        seen.0.load(Ordering::SeqCst) == 7
    })
    .await;
    let doubled: Order = producer
        .message("double", &Order { id: 21 })
        .request(WAIT)
        .await
        .unwrap();
    assert_eq!(doubled, Order { id: 42 });
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_poison_message_reaches_the_dead_letter_after_max_attempts() {
    let broker = MemoryBroker::new();
    let attempts = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&attempts);
    let router = Router::new().subscriber(
        SubscriberDef::new(
            "jobs",
            handler_fn(move |_order: Order| {
                let counter = Arc::clone(&counter);
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    Err::<(), _>("always fails")
                }
            }),
        )
        .on_error(FailurePolicy::Retry)
        .max_attempts(3)
        .dead_letter("jobs.dead"),
    );
    let running = App::new("dlq")
        .broker(broker.clone(), router)
        .start()
        .await
        .unwrap();
    let mut dead = broker.subscribe("jobs.dead").await.unwrap();
    Producer::new(broker.clone())
        .publish("jobs", &Order { id: 1 })
        .await
        .unwrap();
    let message = next_within(&mut dead).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    let reason = dead_letter_reason(&message);
    assert!(reason.contains("always fails"), "{reason}");
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_panic_does_not_stop_other_messages() {
    let broker = MemoryBroker::new();
    let seen = Arc::new(Seen::default());
    let router = Router::new().subscriber(
        SubscriberDef::new(
            "mixed",
            handler_fn(|order: Order, seen: State<Seen>| async move {
                assert!(order.id != 0, "order zero is poison");
                seen.0.0.fetch_add(1, Ordering::SeqCst);
                Settle::Ack
            }),
        )
        .on_panic(FailurePolicy::Drop),
    );
    let running = App::new("panics")
        .state_arc(Arc::clone(&seen))
        .broker(broker.clone(), router)
        .start()
        .await
        .unwrap();
    let producer = Producer::new(broker.clone());
    for id in [1, 0, 2, 0, 3] {
        producer.publish("mixed", &Order { id }).await.unwrap();
    }
    eventually("the three good orders handled", || {
        seen.0.load(Ordering::SeqCst) == 3
    })
    .await;
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn groups_and_prefixes_route_to_the_right_handler() {
    let broker = MemoryBroker::new();
    let seen = Arc::new(Seen::default());
    let inner = Router::new().subscriber(SubscriberDef::new(
        MemorySource::new("created").group("g"),
        handler_fn(|_: Order, seen: State<Seen>| async move {
            seen.0.0.fetch_add(1, Ordering::SeqCst);
        }),
    ));
    let router = Router::with_prefix("orders.").include(inner);
    let running = App::new("prefix")
        .state_arc(Arc::clone(&seen))
        .broker(broker.clone(), router)
        .start()
        .await
        .unwrap();
    Producer::new(broker.clone())
        .publish("orders.created", &Order { id: 1 })
        .await
        .unwrap();
    eventually("the order handled by the group", || {
        seen.0.load(Ordering::SeqCst) == 1
    })
    .await;
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_app_can_run_on_a_spawned_task() {
    let app = App::new("spawned").broker(
        MemoryBroker::new(),
        Router::new().subscriber(SubscriberDef::new("a", handler_fn(|| async {}))),
    );
    tokio::spawn(app.run_until(async {}))
        .await
        .unwrap()
        .unwrap();
}
