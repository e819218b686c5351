//! A persistent session gets the QoS 1 messages published while its service was away.

mod support;

use std::time::Duration;

use ruststream::kit::live::fresh_name;
use ruststream::{
    Broker, IncomingMessage, OutgoingMessage, Publisher, SubscriberExt, SubscriptionSource,
};
use ruststream_mqtt::{MqttBroker, MqttSource, Protocol, Qos};

async fn offline_messages_arrive_on_return(protocol: Protocol, test: &str) {
    let Some(server) = support::shared_server(test).await else {
        return;
    };
    let client = fresh_name("rs_session");
    let topic = format!("sessions/{}", fresh_name("offline"));
    let service = || {
        MqttBroker::new(
            support::config(&server, protocol, &client)
                .persistent_session(Duration::from_secs(300)),
        )
    };

    // The service subscribes once, then goes away.
    let first = service();
    first.connect().await.expect("connect");
    let subscriber = MqttSource::new(&topic)
        .qos(Qos::AtLeastOnce)
        .subscribe(&first)
        .await
        .expect("subscribe");
    drop(subscriber);
    // Dropping the subscriber unsubscribes; subscribe again and leave without dropping it
    // first, as a service that stops does.
    let subscriber = MqttSource::new(&topic)
        .subscribe(&first)
        .await
        .expect("subscribe");
    first.shutdown().await.expect("shutdown");
    drop(subscriber);

    // Published while it is away.
    let publisher = MqttBroker::new(support::config(&server, protocol, &fresh_name("rs_pub")));
    publisher.connect().await.expect("connect publisher");
    for n in 0..10 {
        publisher
            .publish(OutgoingMessage::new(
                &topic,
                format!("offline-{n}").as_bytes(),
            ))
            .await
            .expect("publish at QoS 1");
    }
    publisher.shutdown().await.expect("shutdown publisher");

    // It comes back with the same client id: every message arrives, in order.
    let second = service();
    second.connect().await.expect("reconnect");
    let mut subscriber = MqttSource::new(&topic)
        .subscribe(&second)
        .await
        .expect("subscribe");
    for n in 0..10 {
        let message = tokio::time::timeout(Duration::from_secs(5), subscriber.next_message())
            .await
            .unwrap_or_else(|_| panic!("message {n} of the offline backlog did not arrive"))
            .expect("stream open")
            .expect("message");
        assert_eq!(message.payload(), format!("offline-{n}").as_bytes());
        message.ack().await.expect("ack");
    }
    drop(subscriber);
    second.shutdown().await.expect("shutdown");

    // Clean up the session on the server.
    let clean = MqttBroker::new(support::config(&server, protocol, &client));
    clean.connect().await.expect("clean connect");
    clean.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_receives_qos1_messages_published_while_offline_mqtt5() {
    offline_messages_arrive_on_return(
        Protocol::V5,
        "persistent_session_receives_qos1_messages_published_while_offline_mqtt5",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_receives_qos1_messages_published_while_offline_mqtt311() {
    offline_messages_arrive_on_return(
        Protocol::V311,
        "persistent_session_receives_qos1_messages_published_while_offline_mqtt311",
    )
    .await;
}
