//! Settlement and headers as the crate docs' table says, against the shared Mosquitto.

mod support;

use std::time::Duration;

use ruststream::kit::live::fresh_name;
use ruststream::{
    AckError, Broker, HeaderSupport, Headers, IncomingMessage, OutgoingMessage, Publisher,
    RequestReply, Subscriber, SubscriberExt, SubscriptionSource,
};
use ruststream_mqtt::{MqttBroker, MqttError, MqttSource, Protocol, Qos};

async fn next(subscriber: &mut ruststream_mqtt::MqttSubscriber) -> ruststream_mqtt::MqttMessage {
    tokio::time::timeout(Duration::from_secs(5), subscriber.next_message())
        .await
        .expect("a message within 5 s")
        .expect("stream open")
        .expect("message")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_requeue_is_unsupported_and_a_persistent_session_redelivers_at_reconnect() {
    let test = "nack_requeue_is_unsupported_and_a_persistent_session_redelivers_at_reconnect";
    let Some(server) = support::shared_server(test).await else {
        return;
    };
    let client = fresh_name("rs_nack");
    let topic = format!("settlement/{}", fresh_name("nack"));
    let service = || {
        MqttBroker::new(
            support::config(&server, Protocol::V5, &client)
                .persistent_session(Duration::from_secs(300)),
        )
    };
    let first = service();
    first.connect().await.unwrap();
    let mut subscriber = MqttSource::new(&topic).subscribe(&first).await.unwrap();
    let capabilities = subscriber.capabilities();
    assert!(!capabilities.requeue && !capabilities.delayed_requeue);
    assert_eq!(capabilities.headers, HeaderSupport::Text);
    first
        .publish(OutgoingMessage::new(&topic, b"retry me"))
        .await
        .unwrap();
    let message = next(&mut subscriber).await;
    assert!(matches!(
        message.nack(true).await,
        Err(AckError::Unsupported(_))
    ));
    first.shutdown().await.unwrap();
    drop(subscriber);

    let second = service();
    second.connect().await.unwrap();
    let mut subscriber = MqttSource::new(&topic).subscribe(&second).await.unwrap();
    let message = next(&mut subscriber).await;
    assert_eq!(message.payload(), b"retry me");
    message.ack().await.unwrap();
    drop(subscriber);
    second.shutdown().await.unwrap();
    let clean = MqttBroker::new(support::config(&server, Protocol::V5, &client));
    clean.connect().await.unwrap();
    clean.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt311_refuses_headers_and_requests_and_declares_no_headers() {
    let test = "mqtt311_refuses_headers_and_requests_and_declares_no_headers";
    let Some(server) = support::shared_server(test).await else {
        return;
    };
    let broker = MqttBroker::new(support::config(
        &server,
        Protocol::V311,
        &fresh_name("rs_311"),
    ));
    broker.connect().await.unwrap();
    let topic = format!("settlement/{}", fresh_name("v311"));
    let subscriber = MqttSource::new(&topic).subscribe(&broker).await.unwrap();
    assert_eq!(subscriber.capabilities().headers, HeaderSupport::None);

    let mut headers = Headers::new();
    headers.insert("x-trace", "abc");
    let error = broker
        .publish(OutgoingMessage::new(&topic, b"x").with_headers(&headers))
        .await
        .unwrap_err();
    assert!(matches!(error, MqttError::Header(_)));
    assert!(error.to_string().contains("x-trace") && error.to_string().contains("3.1.1"));

    // QoS and retain headers are options, not headers: they work on 3.1.1 too.
    let mut options = Headers::new();
    options.insert(ruststream_mqtt::QOS_HEADER, "2");
    broker
        .publish(OutgoingMessage::new(&topic, b"x").with_headers(&options))
        .await
        .unwrap();

    let error = broker
        .request(OutgoingMessage::new(&topic, b"x"), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("MQTT 5"));
    drop(subscriber);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_carries_properties_and_qos_per_message() {
    let test = "mqtt5_carries_properties_and_qos_per_message";
    let Some(server) = support::shared_server(test).await else {
        return;
    };
    let broker = MqttBroker::new(support::config(&server, Protocol::V5, &fresh_name("rs_5")));
    broker.connect().await.unwrap();
    let topic = format!("settlement/{}", fresh_name("props"));
    let mut subscriber = MqttSource::new(&topic)
        .qos(Qos::ExactlyOnce)
        .subscribe(&broker)
        .await
        .unwrap();
    let mut headers = Headers::new();
    headers.insert("content-type", "application/json");
    headers.insert("correlation-id", "c-1");
    headers.insert("x-a", "1");
    headers.insert(ruststream_mqtt::QOS_HEADER, "2");
    headers.insert(ruststream_mqtt::EXPIRY_HEADER, "60");
    broker
        .publish(
            OutgoingMessage::new(&topic, b"{}")
                .with_headers(&headers)
                .with_reply_to("settlement/replies"),
        )
        .await
        .unwrap();
    let message = next(&mut subscriber).await;
    let names: Vec<&str> = message.headers().iter().map(|(name, _)| name).collect();
    assert_eq!(names, ["content-type", "correlation-id", "x-a"]);
    assert_eq!(message.reply_to(), Some("settlement/replies"));
    message.ack().await.unwrap();

    let mut bad = Headers::new();
    bad.insert(ruststream_mqtt::QOS_HEADER, "3");
    assert!(
        broker
            .publish(OutgoingMessage::new(&topic, b"x").with_headers(&bad))
            .await
            .is_err()
    );
    drop(subscriber);
    broker.shutdown().await.unwrap();
}
