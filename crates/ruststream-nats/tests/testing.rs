//! The test client routes like NATS, and a service's `TestApp` test runs unchanged on the
//! test client, on an in-process `NatsBroker` and on a live server (`TestBroker for
//! NatsBroker`).
#![cfg(feature = "testing")]

mod support;

use ruststream::matching::{DotSubjects, NameMatcher};
use ruststream::prelude::*;
use ruststream::runtime::{App, Router, Settle, Settlement};
use ruststream::testing::{TestApp, TestBroker};
use ruststream::{SubscriptionSource, subscriber};
use ruststream_nats::{Config, NatsBroker, NatsSource, test_client};

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Order {
    id: u64,
}

#[subscriber(NatsSource::new("*.created").queue_group("billing"), name = "bill")]
async fn bill(order: Order) -> Settle {
    if order.id == 0 {
        Settle::Drop
    } else {
        Settle::Ack
    }
}

fn orders_app<B>(broker: B) -> App
where
    B: TestBroker,
    NatsSource: SubscriptionSource<B>,
    <NatsSource as SubscriptionSource<B>>::Subscriber: 'static,
{
    App::new("orders").broker(broker, Router::with_prefix("orders.").subscriber(bill))
}

/// The service's test, for the test client and the live server alike.
async fn orders_are_billed_and_order_zero_is_dropped<B>(broker: B)
where
    B: TestBroker,
    NatsSource: SubscriptionSource<B>,
    <NatsSource as SubscriptionSource<B>>::Subscriber: 'static,
{
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
async fn the_service_test_runs_on_the_test_client() {
    orders_are_billed_and_order_zero_is_dropped(test_client()).await;
}

#[tokio::test]
async fn the_service_test_runs_on_an_in_process_nats_broker() {
    orders_are_billed_and_order_zero_is_dropped(NatsBroker::in_process()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_test_runs_on_a_live_server() {
    let Some(url) = support::shared_server("the_service_test_runs_on_a_live_server").await else {
        return;
    };
    orders_are_billed_and_order_zero_is_dropped(NatsBroker::new(Config::new(url))).await;
}

/// NATS subject rules, as the server applies them.
#[test]
fn the_test_client_matches_subjects_like_nats() {
    let m = DotSubjects;
    // `*` is exactly one token, anywhere.
    assert!(m.matches("orders.*", "orders.eu"));
    assert!(!m.matches("orders.*", "orders"));
    assert!(!m.matches("orders.*", "orders.eu.created"));
    assert!(m.matches("*.*.created", "orders.eu.created"));
    // `>` is one or more tokens, last only.
    assert!(m.matches("orders.>", "orders.eu.created"));
    assert!(!m.matches("orders.>", "orders"));
    assert!(m.matches(">", "orders"));
    assert!(m.validate_pattern("orders.>.created").is_err());
    // Tokens are compared exactly: case-sensitive, no prefix matching.
    assert!(!m.matches("Orders.*", "orders.eu"));
    assert!(!m.matches("orders.eu", "orders.europe"));
    // Publishing to a wildcard, an empty token or whitespace is refused.
    assert!(m.validate_name("orders.*").is_err());
    assert!(m.validate_name("orders..eu").is_err());
    assert!(m.validate_name("orders eu").is_err());
    assert!(m.validate_name("orders.").is_err());
    // Non-ASCII tokens are valid subjects.
    assert!(m.validate_name("orders.zürich").is_ok());
    assert!(m.matches("orders.*", "orders.zürich"));
}

#[tokio::test]
async fn a_source_maps_its_group_onto_the_test_client() {
    let client = test_client();
    client.connect().await.unwrap();
    let mut first = NatsSource::new("orders.>")
        .queue_group("g")
        .subscribe(&client)
        .await
        .unwrap();
    let mut second = NatsSource::new("orders.>")
        .stream("S")
        .durable("g")
        .subscribe(&client)
        .await
        .unwrap();
    let mut alone = NatsSource::new("orders.*")
        .subscribe(&client)
        .await
        .unwrap();
    client
        .publish(OutgoingMessage::new("orders.eu", b"1"))
        .await
        .unwrap();
    let plain = alone.next_message().await.unwrap().unwrap();
    assert_eq!(plain.payload(), b"1");
    // One copy for the group "g", whichever member (queue group or durable) takes it.
    let taken = tokio::select! {
        m = first.next_message() => m,
        m = second.next_message() => m,
    };
    assert_eq!(taken.unwrap().unwrap().payload(), b"1");
}
