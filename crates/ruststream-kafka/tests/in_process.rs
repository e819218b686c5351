//! In process (feature `testing`): the service's own app runs on
//! `KafkaBroker::in_process` with Kafka's topic names and key-to-partition mapping, and
//! the same `TestApp` test runs against the live server.

mod support;

use ruststream::kit::live::fresh_name;
use ruststream::runtime::{App, Router, Settle, Settlement, SubscriberDef, handler_fn};
use ruststream::testing::{TestApp, TestBroker};
use ruststream::{
    Broker, IncomingMessage, OutgoingMessage, Publisher, SubscriberExt, SubscriptionSource,
};
use ruststream_kafka::{Config, KafkaBroker, KafkaSource, Record, StartFrom};
use support::Created;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Order {
    id: u64,
}

/// The service's app, on any Kafka broker, live or in process.
fn orders_app(broker: KafkaBroker, topic: &str, group: &str) -> App {
    let orders = SubscriberDef::new(
        KafkaSource::new(topic)
            .group(group)
            .start_from(StartFrom::Earliest),
        handler_fn(|order: Order| async move {
            if order.id == 0 {
                Settle::Drop
            } else {
                Settle::Ack
            }
        }),
    )
    .name("take_order");
    App::new("orders").broker(broker, Router::new().subscriber(orders))
}

/// One test for both ways of running.
async fn orders_are_taken_and_order_zero_is_dropped(broker: KafkaBroker, topic: &str, group: &str) {
    let app = TestApp::start(orders_app(broker.clone(), topic, group), broker)
        .await
        .unwrap();
    app.publish(topic, &Order { id: 7 }).await.unwrap();
    app.publish(topic, &Order { id: 0 }).await.unwrap();
    let received = app.received("take_order");
    assert_eq!(received[0].decoded::<Order>().id, 7);
    assert_eq!(
        app.settlements("take_order"),
        [Settlement::Acked, Settlement::Rejected]
    );
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_test_runs_in_process() {
    let broker = KafkaBroker::in_process(Config::new("kafka-1:9092"));
    assert!(broker.is_in_process());
    assert!(matches!(
        broker.quiescence(),
        ruststream::testing::Quiescence::Backlog(_)
    ));
    orders_are_taken_and_order_zero_is_dropped(broker, "orders", "billing").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_service_test_runs_against_the_live_server() {
    let Some(servers) =
        support::shared_server("the_same_service_test_runs_against_the_live_server").await
    else {
        return;
    };
    let created = Created::default();
    let _clean_up = created.on_drop(&servers);
    let topic = created.topic(fresh_name("inproc.orders").replace('_', "."));
    let group = created.group(fresh_name("inproc-billing"));
    created.topic(KafkaSource::new(&topic).retry_topic_in(&group));
    let broker = KafkaBroker::new(support::config(&servers));
    orders_are_taken_and_order_zero_is_dropped(broker, &topic, &group).await;
    created.delete(&servers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_keys_pick_partitions_as_kafka_does_and_groups_share() {
    let broker = KafkaBroker::in_process(Config::new("kafka-1:9092").create_topics(6, 1));
    broker.connect().await.unwrap();
    let mut billing = KafkaSource::new("orders")
        .group("billing")
        .subscribe(&broker)
        .await
        .unwrap();
    let mut audit = KafkaSource::new("orders")
        .group("audit")
        .subscribe(&broker)
        .await
        .unwrap();
    let stored = broker
        .send(Record::new("orders", b"{}").key(b"customer-7"))
        .await
        .unwrap();
    for subscriber in [&mut billing, &mut audit] {
        let message = subscriber.next_message().await.unwrap().unwrap();
        assert_eq!(message.topic(), "orders");
        assert_eq!(message.partition_key(), Some(&b"customer-7"[..]));
        assert_eq!(message.partition(), stored.partition, "the key's partition");
        assert!((0..6).contains(&message.partition()));
        message.ack().await.unwrap();
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn in_process_topic_names_follow_kafkas_rules() {
    let broker = KafkaBroker::in_process(Config::new("kafka-1:9092"));
    broker.connect().await.unwrap();
    let refused = broker
        .publish(OutgoingMessage::new("orders/eu", b"{}"))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("orders/eu"), "{refused}");
    let refused = KafkaSource::new("orders*")
        .group("g")
        .subscribe(&broker)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("orders*"), "{refused}");
}
