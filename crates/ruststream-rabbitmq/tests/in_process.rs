//! The in-process mode (feature `testing`): a service's own app runs with no server,
//! routed as RabbitMQ routes (default exchange, topic `*` and `#`, fanout, headers), and
//! its `TestApp` test is the one that also runs against the live server.
#![cfg(feature = "testing")]

mod support;

use std::time::Duration;

use ruststream::runtime::{App, Router, Settlement};
use ruststream::testing::TestApp;
use ruststream::{
    Broker, DescribeServer, Headers, IncomingMessage, OutgoingMessage, Publisher, RequestReply,
    SubscriberExt, SubscriptionSource, Transaction, TransactionalPublisher, subscriber,
};
use ruststream_rabbitmq::{Config, RabbitBroker, RabbitError, RabbitExchange, RabbitQueue};

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Order {
    id: u64,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Receipt {
    id: u64,
}

fn orders() -> RabbitExchange {
    RabbitExchange::topic("it.orders")
}

#[subscriber(RabbitQueue::new("it.billing").bind(orders(), "orders.*.created"), name = "bill")]
async fn bill(order: Order) -> Receipt {
    Receipt { id: order.id }
}

#[subscriber(RabbitQueue::new("it.audit").bind(orders(), "orders.#"), name = "audit")]
async fn audit(order: Order) {
    assert!(order.id > 0);
}

fn app(broker: RabbitBroker) -> App {
    App::new("orders").broker(broker, Router::new().subscriber(bill).subscriber(audit))
}

/// The service's test, on whichever broker it is given.
async fn orders_are_routed_by_pattern(broker: RabbitBroker) {
    let app = TestApp::start(app(broker.clone()), broker.clone())
        .await
        .unwrap();
    let publisher = broker.publisher(orders());
    for (id, key) in [
        (1, "orders.eu.created"),
        (2, "orders.eu.paid"),
        (3, "orders"),
    ] {
        let payload = serde_json::to_vec(&Order { id }).unwrap();
        publisher
            .publish(OutgoingMessage::new(key, &payload))
            .await
            .unwrap();
    }
    app.settled().await.unwrap();
    let billed: Vec<u64> = app
        .received("bill")
        .iter()
        .map(|r| r.decoded::<Order>().id)
        .collect();
    let audited: Vec<u64> = app
        .received("audit")
        .iter()
        .map(|r| r.decoded::<Order>().id)
        .collect();
    assert_eq!(billed, [1]);
    assert_eq!(audited, [1, 2, 3]);
    assert_eq!(app.settlements("audit"), [Settlement::Acked; 3]);
    // A plain name goes through the default exchange to the queue of that name.
    app.publish("it.billing", &Order { id: 4 }).await.unwrap();
    assert_eq!(app.received("bill").len(), 2);
    // A request is answered by the handler's return value.
    let receipt: Receipt = app
        .request("it.billing", &Order { id: 5 }, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(receipt.id, 5);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_service_runs_in_process_with_rabbitmq_routing() {
    orders_are_routed_by_pattern(RabbitBroker::in_process()).await;
}

#[tokio::test]
async fn the_same_service_test_runs_against_the_live_server() {
    let test = "the_same_service_test_runs_against_the_live_server";
    let Some(url) = support::shared_server(test).await else {
        return;
    };
    let _clean = ruststream::kit::live::CleanUp::new({
        let url = url.clone();
        move || async move {
            let broker = RabbitBroker::new(Config::new(&url));
            if broker.connect().await.is_ok() {
                let _ = broker.delete_queue("it.billing").await;
                let _ = broker.delete_queue("it.audit").await;
                let _ = broker.delete_exchange("it.orders").await;
                let _ = broker.shutdown().await;
            }
        }
    });
    orders_are_routed_by_pattern(RabbitBroker::new(Config::new(url))).await;
}

async fn next(subscriber: &mut ruststream_rabbitmq::RabbitSubscriber) -> Vec<u8> {
    let message = tokio::time::timeout(Duration::from_secs(2), subscriber.next_message())
        .await
        .expect("a message")
        .unwrap()
        .unwrap();
    let payload = message.payload().to_vec();
    message.ack().await.unwrap();
    payload
}

#[tokio::test]
async fn fanout_and_headers_exchanges_route_in_process() {
    let broker = RabbitBroker::in_process();
    broker.connect().await.unwrap();
    let everyone = RabbitExchange::fanout("it.everyone");
    let mut first = RabbitQueue::new("")
        .exclusive()
        .bind(everyone.clone(), "")
        .subscribe(&broker)
        .await
        .unwrap();
    let mut second = RabbitQueue::new("")
        .exclusive()
        .bind(everyone.clone(), "")
        .subscribe(&broker)
        .await
        .unwrap();
    assert_ne!(first.queue(), second.queue());
    broker
        .publisher(everyone)
        .publish(OutgoingMessage::new("any", b"all"))
        .await
        .unwrap();
    assert_eq!(next(&mut first).await, b"all");
    assert_eq!(next(&mut second).await, b"all");

    let by_headers = RabbitExchange::headers("it.by-headers");
    let mut eu_orders = RabbitQueue::new("it.eu-orders")
        .bind_headers(
            by_headers.clone(),
            true,
            [("region", "eu"), ("kind", "order")],
        )
        .subscribe(&broker)
        .await
        .unwrap();
    let publisher = broker.publisher(by_headers).mandatory(false);
    let refund: Headers = [("region", "eu"), ("kind", "refund")].into_iter().collect();
    let order: Headers = [("region", "eu"), ("kind", "order")].into_iter().collect();
    for (payload, headers) in [(&b"refund"[..], &refund), (b"order", &order)] {
        publisher
            .publish(OutgoingMessage::new("", payload).with_headers(headers))
            .await
            .unwrap();
    }
    assert_eq!(next(&mut eu_orders).await, b"order");
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn in_process_errors_are_the_servers() {
    let broker = RabbitBroker::in_process();
    broker.connect().await.unwrap();
    let error = broker
        .publish(OutgoingMessage::new("nobody", b"x"))
        .await
        .unwrap_err();
    assert!(matches!(error, RabbitError::Unroutable { .. }), "{error}");
    let error = RabbitQueue::new("it.missing")
        .passive()
        .subscribe(&broker)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("passive"), "{error}");
    let bad: Headers = [("priority", "high")].into_iter().collect();
    let error = broker
        .publish(OutgoingMessage::new("nobody", b"x").with_headers(&bad))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("priority"), "{error}");
    let error = broker
        .request(
            OutgoingMessage::new("nobody", b"x"),
            Duration::from_millis(100),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, RabbitError::Unroutable { .. }), "{error}");
    assert_eq!(broker.describe_server().protocol, "amqp");
    assert!(broker.is_in_process());
    broker.shutdown().await.unwrap();
    let error = broker
        .publish(OutgoingMessage::new("nobody", b"x"))
        .await
        .unwrap_err();
    assert!(matches!(error, RabbitError::Closed), "{error}");
}

#[tokio::test]
async fn an_in_process_transaction_publishes_on_commit_only() {
    let broker = RabbitBroker::in_process();
    broker.connect().await.unwrap();
    let mut queue = RabbitQueue::new("it.tx").subscribe(&broker).await.unwrap();
    let mut aborted = broker.begin().await.unwrap();
    aborted
        .publish(OutgoingMessage::new("it.tx", b"never"))
        .await
        .unwrap();
    aborted.abort().await.unwrap();
    let mut committed = broker.begin().await.unwrap();
    committed
        .publish(OutgoingMessage::new("it.tx", b"one"))
        .await
        .unwrap();
    committed
        .publish(OutgoingMessage::new("it.tx", b"two"))
        .await
        .unwrap();
    committed.commit().await.unwrap();
    assert_eq!(next(&mut queue).await, b"one");
    assert_eq!(next(&mut queue).await, b"two");
    broker.shutdown().await.unwrap();
}
