//! Routing and composition: router prefixes, nested routers, consumer groups, wildcard
//! subscriptions, and two brokers in one app publishing to each other.
#![cfg(feature = "testing")]

mod support;

use std::collections::HashSet;

use ruststream::matching::DotSubjects;
use ruststream::memory::{MemoryBroker, MemorySource};
use ruststream::runtime::{App, Message, Producer, Router, SubscriberDef, handler_fn};
use ruststream::testing::{TestApp, TestClient};
use serde::{Deserialize, Serialize};
use support::inspect;

#[derive(Debug, Serialize, Deserialize, PartialEq, Clone)]
struct Order {
    id: u64,
}

fn noop() -> impl ruststream::runtime::Handler {
    handler_fn(|_: Order| async {})
}

#[tokio::test]
async fn a_router_prefix_is_prepended_to_its_subscribers() {
    let broker = MemoryBroker::new();
    let router = Router::with_prefix("orders.")
        .subscriber(SubscriberDef::new("created", noop()).name("created"));
    let app = App::new("prefix").broker(broker.clone(), router);
    let described = &app.describe().brokers[0].subscribers[0];
    assert_eq!(described.destination, "orders.created");

    let app = TestApp::start(app, broker).await.unwrap();
    app.publish("created", &Order { id: 1 }).await.unwrap();
    assert!(
        app.received("created").is_empty(),
        "the bare name is not subscribed"
    );
    app.publish("orders.created", &Order { id: 2 })
        .await
        .unwrap();
    let received = app.received("created");
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].name.as_deref(), Some("orders.created"));
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn nested_routers_concatenate_their_prefixes() {
    let broker = MemoryBroker::new();
    let billing = Router::with_prefix("billing.")
        .subscriber(SubscriberDef::new("invoice", noop()).name("invoice"));
    let shipping = Router::with_prefix("shipping.")
        .subscriber(SubscriberDef::new("label", noop()).name("label"));
    let eu = Router::with_prefix("eu.")
        .include(billing)
        .include(shipping)
        .subscriber(SubscriberDef::new("audit", noop()).name("audit"));
    let app = App::new("nested").broker(broker.clone(), Router::new().include(eu));
    let destinations: HashSet<String> = app.describe().brokers[0]
        .subscribers
        .iter()
        .map(|s| s.destination.clone())
        .collect();
    assert_eq!(
        destinations,
        HashSet::from([
            "eu.audit".to_owned(),
            "eu.billing.invoice".to_owned(),
            "eu.shipping.label".to_owned()
        ])
    );

    let app = TestApp::start(app, broker).await.unwrap();
    app.publish("eu.billing.invoice", &Order { id: 1 })
        .await
        .unwrap();
    app.publish("eu.shipping.label", &Order { id: 2 })
        .await
        .unwrap();
    app.publish("eu.audit", &Order { id: 3 }).await.unwrap();
    app.publish("billing.invoice", &Order { id: 4 })
        .await
        .unwrap();
    for (handler, id) in [("invoice", 1), ("label", 2), ("audit", 3)] {
        let received = app.received(handler);
        assert_eq!(received.len(), 1, "{handler}: {received:?}");
        assert_eq!(received[0].decoded::<Order>().id, id);
    }
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn members_of_a_consumer_group_share_the_messages_and_fan_out_still_gets_all() {
    let broker = MemoryBroker::new();
    // Two members of one group, under a prefix (the group survives the prefix), and one
    // plain subscription that sees everything.
    let group = Router::with_prefix("jobs.")
        .subscriber(
            SubscriberDef::new(MemorySource::new("*").group("workers"), noop()).name("member a"),
        )
        .subscriber(
            SubscriberDef::new(MemorySource::new("*").group("workers"), noop()).name("member b"),
        );
    let router = Router::new()
        .include(group)
        .subscriber(SubscriberDef::new("jobs.>", noop()).name("audit"));
    let app = TestApp::start(App::new("groups").broker(broker.clone(), router), broker)
        .await
        .unwrap();
    for id in 0..40 {
        app.producer()
            .publish(&format!("jobs.{}", id % 3), &Order { id })
            .await
            .unwrap();
    }
    app.settled().await.unwrap();

    let mut shared: Vec<u64> = app
        .received("member a")
        .iter()
        .chain(app.received("member b").iter())
        .map(|r| r.decoded::<Order>().id)
        .collect();
    shared.sort_unstable();
    assert_eq!(
        shared,
        (0..40).collect::<Vec<_>>(),
        "each message to one member"
    );
    assert_eq!(
        app.received("audit").len(),
        40,
        "fan-out gets every message"
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_wildcard_subscription_sees_the_concrete_names() {
    let broker = MemoryBroker::new();
    let router = Router::new().subscriber(
        SubscriberDef::new(
            "orders.*",
            inspect(|message: &Message<'_>| {
                assert_eq!(message.destination(), "orders.*");
                ruststream::runtime::Settle::Ack
            }),
        )
        .name("orders"),
    );
    let app = TestApp::start(App::new("wildcards").broker(broker.clone(), router), broker)
        .await
        .unwrap();
    app.publish("orders.eu", &Order { id: 1 }).await.unwrap();
    app.publish("orders.us", &Order { id: 2 }).await.unwrap();
    let names: Vec<Option<String>> = app.received("orders").into_iter().map(|r| r.name).collect();
    assert_eq!(names, [Some("orders.eu".into()), Some("orders.us".into())]);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn two_brokers_in_one_app_publish_to_each_other_through_producer_arguments() {
    // The memory broker takes orders and audits them on the other broker (a test client
    // standing in for, say, NATS), which confirms back on the memory broker.
    let memory = MemoryBroker::new();
    let other = TestClient::new(DotSubjects);
    let orders = Router::new()
        .subscriber(
            SubscriberDef::new(
                "orders",
                handler_fn(|order: Order, audit: Producer<TestClient>| async move {
                    audit.publish("audit.orders", &order).await
                }),
            )
            .name("take order"),
        )
        .subscriber(SubscriberDef::new("orders.audited", noop()).name("audited"));
    let audit = Router::new().subscriber(
        SubscriberDef::new(
            "audit.orders",
            handler_fn(|order: Order, back: Producer<MemoryBroker>| async move {
                back.publish("orders.audited", &order).await
            }),
        )
        .name("audit"),
    );
    let app = App::new("two brokers")
        .broker(memory.clone(), orders)
        .broker(other.clone(), audit);
    let app = TestApp::start(app, memory).await.unwrap().watch(other);
    app.publish("orders", &Order { id: 42 }).await.unwrap();

    assert_eq!(
        app.received("audit")[0].decoded::<Order>(),
        Order { id: 42 }
    );
    assert_eq!(
        app.received("audited")[0].decoded::<Order>(),
        Order { id: 42 }
    );
    assert_eq!(app.published("audit.orders").len(), 1);
    assert_eq!(app.published("orders.audited").len(), 1);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_handler_producer_publishes_on_its_own_broker_when_two_brokers_share_a_type() {
    let a = MemoryBroker::new();
    let b = MemoryBroker::new();
    let on_a = Router::new()
        .subscriber(
            SubscriberDef::new(
                "in",
                handler_fn(|order: Order, out: Producer<MemoryBroker>| async move {
                    out.publish("out", &order).await
                }),
            )
            .name("in"),
        )
        .subscriber(SubscriberDef::new("out", noop()).name("out on a"));
    let on_b = Router::new().subscriber(SubscriberDef::new("out", noop()).name("out on b"));
    let app = App::new("same type")
        .broker(a.clone(), on_a)
        .broker(b.clone(), on_b);
    let app = TestApp::start(app, a).await.unwrap().watch(b);
    app.publish("in", &Order { id: 1 }).await.unwrap();
    assert_eq!(
        app.received("out on b").len(),
        0,
        "published to the other broker"
    );
    assert_eq!(app.received("out on a").len(), 1);
    app.shutdown().await.unwrap();
}
