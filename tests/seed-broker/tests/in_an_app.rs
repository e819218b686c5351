//! The seed broker, written only from the contract page, mounted in an `App`: by name and
//! by descriptor, with replies, `RetryAfter` (the contract's default: an immediate
//! requeue), keyed workers over keyless messages, and the start errors that name a
//! missing capability.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use ruststream::runtime::{
    App, AppError, Producer, Respond, Router, Settle, SubscriberDef, handler_fn,
};
use ruststream::{Broker, Publisher, Subscribe, Subscriber};
use ruststream_seed_broker::{SeedBroker, SeedConfig, SeedSource};
use serde::{Deserialize, Serialize};

/// The bound on anything the tests wait for.
const WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    amount: f64,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Quote {
    id: u64,
    price: f64,
}

fn broker() -> SeedBroker {
    SeedBroker::new(SeedConfig::new("seed://localhost"))
}

/// An app on any broker with only the contract's required traits: nothing else of ours
/// is asked for, so this compiles for every broker written from the contract page.
fn app_on<B>(broker: B, router: Router<B>) -> App
where
    B: Broker + Subscribe + Publisher + Clone + Send + Sync + 'static,
{
    App::new("seed-service").broker(broker, router)
}

/// Waits for `n` messages on `name`, subscribed before the app publishes anything.
async fn collect<S: Subscriber>(subscriber: &mut S, n: usize) -> Vec<Vec<u8>> {
    let mut stream = std::pin::pin!(subscriber.stream());
    let mut bodies = Vec::new();
    while bodies.len() < n {
        let message = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("a message in time")
            .expect("the subscription is open")
            .expect("no stream error");
        bodies.push(ruststream::IncomingMessage::payload(&message).to_vec());
    }
    bodies
}

#[ruststream::subscriber("orders.created", publish_to = "quotes")]
async fn quote(order: Order) -> Quote {
    Quote {
        id: order.id,
        price: order.amount * 2.0,
    }
}

#[tokio::test]
async fn a_handler_mounted_by_name_handles_messages_and_its_reply_is_published() {
    let broker = broker();
    broker.connect().await.unwrap();
    let mut quotes = broker.subscribe("quotes").await.unwrap();
    let running = app_on(broker.clone(), Router::new().subscriber(quote))
        .start()
        .await
        .unwrap();

    Producer::new(broker.clone())
        .publish("orders.created", &Order { id: 3, amount: 4.5 })
        .await
        .unwrap();

    let replies = collect(&mut quotes, 1).await;
    let reply: Quote = serde_json::from_slice(&replies[0]).unwrap();
    assert_eq!(reply, Quote { id: 3, price: 9.0 });
    running.shutdown().await.unwrap();
    assert_eq!(broker.settlements().acked, 1);
}

#[ruststream::subscriber(SeedSource::new("orders.paid").group("billing"), publish_to = "receipts")]
async fn receipt(order: Order) -> u64 {
    order.id
}

#[tokio::test]
async fn a_handler_mounted_by_descriptor_handles_messages() {
    let broker = broker();
    broker.connect().await.unwrap();
    let mut receipts = broker.subscribe("receipts").await.unwrap();
    let running = app_on(broker.clone(), Router::new().subscriber(receipt))
        .start()
        .await
        .unwrap();

    let producer = Producer::new(broker.clone());
    for id in 1..=3 {
        producer
            .publish("orders.paid", &Order { id, amount: 1.0 })
            .await
            .unwrap();
    }

    let ids: Vec<u64> = collect(&mut receipts, 3)
        .await
        .iter()
        .map(|body| serde_json::from_slice(body).unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3]);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn retry_after_falls_back_to_the_contracts_immediate_requeue() {
    let broker = broker();
    broker.connect().await.unwrap();
    let mut done = broker.subscribe("jobs.done").await.unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&calls);
    // A delay far beyond the test's bound: only an immediate requeue gets a second call
    // in time, and no worker may sleep through it.
    let handler = handler_fn(move |order: Order| {
        let call = counted.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if call == 1 {
                Settle::RetryAfter(Duration::from_secs(3600))
            } else {
                let _ = order;
                Settle::Ack
            }
        }
    });
    let notify = handler_fn(|order: Order| async move { Respond(order.id) });
    let router = Router::new()
        .subscriber(SubscriberDef::new("jobs", handler).name("work"))
        .subscriber(SubscriberDef::new("jobs", notify).publish_to("jobs.done"));
    let running = app_on(broker.clone(), router).start().await.unwrap();

    Producer::new(broker.clone())
        .publish("jobs", &Order { id: 1, amount: 1.0 })
        .await
        .unwrap();
    collect(&mut done, 1).await;
    tokio::time::timeout(WAIT, async {
        while calls.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the requeued message was handled again at once");
    running.shutdown().await.unwrap();
    let settled = broker.settlements();
    assert_eq!(settled.requeued, 1, "nack_after's default is nack(true)");
    assert!(settled.acked >= 2, "{settled:?}");
}

#[tokio::test]
async fn keyed_workers_rotate_keyless_messages_over_their_lanes() {
    let broker = broker();
    broker.connect().await.unwrap();
    let mut handled = broker.subscribe("events.handled").await.unwrap();
    let handler = handler_fn(|id: u64| async move { Respond(id) });
    let router = Router::new().subscriber(
        SubscriberDef::new("events", handler)
            .workers_by_key(4)
            .publish_to("events.handled"),
    );
    let running = app_on(broker.clone(), router).start().await.unwrap();

    let producer = Producer::new(broker.clone());
    for id in 0..20u64 {
        producer.publish("events", &id).await.unwrap();
    }

    let mut ids: Vec<u64> = collect(&mut handled, 20)
        .await
        .iter()
        .map(|body| serde_json::from_slice(body).unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..20).collect::<Vec<_>>());
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_prefix_on_a_descriptor_that_cannot_take_one_fails_the_start_naming_it() {
    let handler = handler_fn(|_: Order| async {});
    let router = Router::with_prefix("eu.")
        .subscriber(SubscriberDef::new(SeedSource::new("orders"), handler).name("eu_orders"));
    let error = app_on(broker(), router).start().await.unwrap_err();

    assert!(matches!(error, AppError::Unsupported { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("eu_orders"), "{text}");
    assert!(text.contains("SubscriptionSource::with_prefix"), "{text}");
}

#[tokio::test]
async fn a_name_takes_the_routers_prefix() {
    let broker = broker();
    broker.connect().await.unwrap();
    let mut out = broker.subscribe("out").await.unwrap();
    let handler = handler_fn(|id: u64| async move { Respond(id) });
    let router = Router::with_prefix("eu.")
        .subscriber(SubscriberDef::new("orders", handler).publish_to("out"));
    let running = app_on(broker.clone(), router).start().await.unwrap();

    Producer::new(broker.clone())
        .publish("eu.orders", &9u64)
        .await
        .unwrap();
    assert_eq!(collect(&mut out, 1).await, [b"9".to_vec()]);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn max_attempts_without_redelivery_counts_fails_the_start_naming_it() {
    let handler = handler_fn(|_: Order| async {});
    let router = Router::new().subscriber(
        SubscriberDef::new("orders", handler)
            .name("limited")
            .max_attempts(3),
    );
    let error = app_on(broker(), router).start().await.unwrap_err();

    let text = error.to_string();
    assert!(matches!(error, AppError::Unsupported { .. }), "{text}");
    assert!(text.contains("limited"), "{text}");
    assert!(text.contains("redelivery counts"), "{text}");
}

#[tokio::test]
async fn the_server_reaches_the_apps_description() {
    let app = app_on(broker(), Router::new().subscriber(quote));
    let description = app.describe();
    let server = description.brokers[0]
        .server
        .as_ref()
        .expect("the seed broker has DescribeServer");
    assert_eq!(server.protocol, "seed");
    assert_eq!(
        description.brokers[0].subscribers[0].destination,
        "orders.created"
    );
}
