//! A private Mosquitto (its own port and files, persistence on) restarted while a service
//! consumes: the connection comes back by itself, the subscription is restored, and no
//! acknowledged publish is lost.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use ruststream::kit::live::fresh_name;
use ruststream::{
    Broker, IncomingMessage, OutgoingMessage, Publisher, SubscriberExt, SubscriptionSource,
};
use ruststream_mqtt::{Backoff, Config, MqttBroker, MqttSource, Protocol};

async fn publish_until_acknowledged(broker: &MqttBroker, topic: &str, payload: String) {
    for _ in 0..100 {
        match broker
            .publish(OutgoingMessage::new(topic, payload.as_bytes()))
            .await
        {
            Ok(()) => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("`{payload}` was never acknowledged");
}

async fn restart_loses_no_acknowledged_publish(protocol: Protocol, test: &str) {
    let Some(server) = support::private_server(test).await else {
        return;
    };
    let config = |client: &str| {
        Config::new(protocol, "127.0.0.1", server.port(), client)
            .reconnect(Backoff::exponential(
                Duration::from_millis(50),
                Duration::from_millis(500),
            ))
            .ack_timeout(Duration::from_secs(2))
    };
    let topic = format!("restart/{}", fresh_name("orders"));
    let consumer = MqttBroker::new(
        config(&fresh_name("rs_restart_sub")).persistent_session(Duration::from_secs(600)),
    );
    consumer.connect().await.expect("connect the consumer");
    let mut subscriber = MqttSource::new(&topic).subscribe(&consumer).await.unwrap();
    let publisher = MqttBroker::new(config(&fresh_name("rs_restart_pub")));
    publisher.connect().await.expect("connect the publisher");

    let mut received = BTreeSet::new();
    for n in 0..20 {
        publish_until_acknowledged(&publisher, &topic, format!("m{n:03}")).await;
    }
    // Take some, then restart the server with messages acknowledged to the publisher and
    // not yet to the consumer.
    for _ in 0..10 {
        let message = subscriber.next_message().await.unwrap().unwrap();
        received.insert(String::from_utf8(message.payload().to_vec()).unwrap());
        message.ack().await.unwrap();
    }
    server.restart_gracefully().await;
    for n in 20..40 {
        publish_until_acknowledged(&publisher, &topic, format!("m{n:03}")).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while received.len() < 40 {
        let message = tokio::time::timeout_at(deadline, subscriber.next_message())
            .await
            .unwrap_or_else(|_| {
                let missing: Vec<String> = (0..40)
                    .map(|n| format!("m{n:03}"))
                    .filter(|m| !received.contains(m))
                    .collect();
                panic!("after the restart, missing {missing:?}")
            })
            .expect("the stream stays open across the restart")
            .expect("message");
        received.insert(String::from_utf8(message.payload().to_vec()).unwrap());
        // Acknowledgements of messages from before the restart may fail; they come back.
        let _ = message.ack().await;
    }
    drop(subscriber);
    publisher.shutdown().await.unwrap();
    consumer.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_restart_loses_no_acknowledged_publish_mqtt5() {
    restart_loses_no_acknowledged_publish(
        Protocol::V5,
        "mosquitto_restart_loses_no_acknowledged_publish_mqtt5",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_restart_loses_no_acknowledged_publish_mqtt311() {
    restart_loses_no_acknowledged_publish(
        Protocol::V311,
        "mosquitto_restart_loses_no_acknowledged_publish_mqtt311",
    )
    .await;
}
