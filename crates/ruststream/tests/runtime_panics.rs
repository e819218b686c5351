//! Panics: a panicking handler is caught and logged, its message follows the `on_panic`
//! policy, and every other message is handled as usual.
#![cfg(feature = "testing")]

mod support;

use ruststream::memory::MemoryBroker;
use ruststream::runtime::{
    App, DEAD_LETTER_REASON_HEADER, FailurePolicy, Router, Settlement, SubscriberDef, handler_fn,
};
use ruststream::testing::{Ended, TestApp};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Order {
    id: u64,
}

/// Panics on order 0.
fn panics_on_zero() -> impl ruststream::runtime::Handler {
    handler_fn(|order: Order| async move {
        assert!(order.id != 0, "order zero is poison");
    })
}

async fn start(
    subscriber: SubscriberDef<&'static str, impl ruststream::runtime::Handler>,
) -> TestApp<MemoryBroker> {
    let broker = MemoryBroker::new();
    let router = Router::new()
        .subscriber(subscriber.name("orders"))
        .subscriber(
            SubscriberDef::new("orders.dead", handler_fn(|| async {})).name("dead letters"),
        );
    TestApp::start(App::new("panics").broker(broker.clone(), router), broker)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_handler_panic_does_not_stop_other_messages() {
    let app =
        start(SubscriberDef::new("orders", panics_on_zero()).on_panic(FailurePolicy::Drop)).await;
    for id in [1, 0, 2, 0, 3] {
        app.publish("orders", &Order { id }).await.unwrap();
    }
    let received = app.received("orders");
    let ids: Vec<u64> = received.iter().map(|r| r.decoded::<Order>().id).collect();
    assert_eq!(ids, [1, 0, 2, 0, 3], "every message reached the handler");
    for record in &received {
        if record.decoded::<Order>().id == 0 {
            assert_eq!(
                record.ended,
                Some(Ended::Panicked("order zero is poison".into()))
            );
            assert_eq!(record.settlement, Some(Settlement::Rejected));
        } else {
            assert_eq!(record.ended, Some(Ended::Completed));
            assert_eq!(record.settlement, Some(Settlement::Acked));
        }
    }
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_one_worker_does_not_disturb_the_others() {
    let app = start(
        SubscriberDef::new("orders", panics_on_zero())
            .workers(4)
            .on_panic(FailurePolicy::Drop),
    )
    .await;
    for id in 0..40 {
        app.producer()
            .publish("orders", &Order { id: id % 4 })
            .await
            .unwrap();
    }
    app.settled().await.unwrap();
    let settlements = app.settlements("orders");
    assert_eq!(settlements.len(), 40);
    let rejected = settlements
        .iter()
        .filter(|s| **s == Settlement::Rejected)
        .count();
    assert_eq!(rejected, 10, "only the poison orders: {settlements:?}");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_panic_follows_its_on_panic_policy_dead_letter() {
    let app = start(
        SubscriberDef::new("orders", panics_on_zero())
            .on_panic(FailurePolicy::DeadLetter)
            .dead_letter("orders.dead"),
    )
    .await;
    app.publish("orders", &Order { id: 0 }).await.unwrap();
    assert_eq!(app.settlements("orders"), [Settlement::DeadLettered]);
    let dead = &app.received("dead letters")[0];
    let reason = dead.header(DEAD_LETTER_REASON_HEADER).unwrap();
    assert!(
        reason.contains("the handler panicked: order zero is poison"),
        "{reason}"
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_panic_follows_the_error_policy_when_on_panic_is_not_set() {
    let app = start(
        SubscriberDef::new("orders", panics_on_zero())
            .on_error(FailurePolicy::Retry)
            .max_attempts(2),
    )
    .await;
    app.publish("orders", &Order { id: 0 }).await.unwrap();
    assert_eq!(
        app.settlements("orders"),
        [Settlement::Retried { delay: None }, Settlement::Rejected],
        "retried like an error, then dropped after max_attempts"
    );
    app.shutdown().await.unwrap();
}
