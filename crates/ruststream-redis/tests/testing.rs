//! The in-process mode routes like Redis (glob patterns, list and group members share),
//! and a service's `TestApp` test runs unchanged on an in-process `RedisBroker` and on a
//! live server (`TestBroker for RedisBroker`).
#![cfg(feature = "testing")]

mod support;

use std::time::Duration;

use ruststream::prelude::*;
use ruststream::runtime::{App, Router, Settle, Settlement};
use ruststream::testing::{TestApp, TestBroker};
use ruststream::{SubscriptionSource, subscriber};
use ruststream_redis::{RedisBroker, RedisSource};

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Order {
    id: u64,
}

#[subscriber(RedisSource::pattern("*.created"), name = "bill")]
async fn bill(order: Order) -> Settle {
    if order.id == 0 {
        Settle::Drop
    } else {
        Settle::Ack
    }
}

fn orders_app(broker: RedisBroker) -> App {
    App::new("orders").broker(broker, Router::with_prefix("orders.").subscriber(bill))
}

/// The service's test, in process and live alike.
async fn orders_are_billed_and_order_zero_is_dropped(broker: RedisBroker) {
    let app = TestApp::start(orders_app(broker.clone()), broker)
        .await
        .unwrap();
    app.publish("orders.eu.created", &Order { id: 7 })
        .await
        .unwrap();
    app.publish("orders.eu.created", &Order { id: 0 })
        .await
        .unwrap();
    let received = app.received("bill");
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].decoded::<Order>().id, 7);
    assert_eq!(
        app.settlements("bill"),
        [Settlement::Acked, Settlement::Rejected]
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_service_test_runs_on_an_in_process_redis_broker() {
    orders_are_billed_and_order_zero_is_dropped(RedisBroker::in_process()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_test_runs_on_a_live_server() {
    let Some(url) = support::shared_server("the_service_test_runs_on_a_live_server").await else {
        return;
    };
    let broker = RedisBroker::new(support::config(&url));
    assert!(!broker.is_in_process());
    fn is_test_broker<B: TestBroker>(_: &B) {}
    is_test_broker(&broker);
    orders_are_billed_and_order_zero_is_dropped(broker).await;
}

#[tokio::test]
async fn list_consumers_share_and_every_stream_group_gets_a_copy() {
    let broker = RedisBroker::in_process();
    broker.connect().await.unwrap();
    let mut workers = Vec::new();
    for _ in 0..2 {
        workers.push(RedisSource::list("jobs").subscribe(&broker).await.unwrap());
    }
    let mut audit = RedisSource::stream("jobs")
        .group("audit")
        .subscribe(&broker)
        .await
        .unwrap();
    let mut exact = RedisSource::channel("jobs*")
        .subscribe(&broker)
        .await
        .unwrap();
    for n in 0..4 {
        broker
            .publish(OutgoingMessage::new("jobs", format!("{n}").as_bytes()))
            .await
            .unwrap();
    }
    let mut shared = 0;
    for worker in &mut workers {
        while let Ok(Some(_)) =
            tokio::time::timeout(Duration::from_millis(50), worker.next_message()).await
        {
            shared += 1;
        }
    }
    assert_eq!(shared, 4, "each list element goes to one consumer");
    for n in 0..4 {
        let message = audit.next_message().await.unwrap().unwrap();
        assert_eq!(message.payload(), format!("{n}").as_bytes());
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(50), exact.next_message())
            .await
            .is_err(),
        "a channel named `jobs*` is not a pattern"
    );
    broker.shutdown().await.unwrap();
    assert!(audit.next_message().await.is_none(), "the stream ends");
}
