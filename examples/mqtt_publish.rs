//! Publishing on MQTT: QoS and retain per message through headers, MQTT 5 properties, a
//! subscription with manual acks, and a request answered through a response topic.
//!
//! Needs an MQTT server on 127.0.0.1:1883 (`mosquitto -p 1883`):
//! `cargo run -p ruststream-examples --example mqtt_publish`

use std::time::Duration;

use ruststream::{
    Broker, Headers, IncomingMessage, OutgoingMessage, Publisher, RequestReply, SubscriberExt,
    SubscriptionSource,
};
use ruststream_mqtt::{
    Config, MqttBroker, MqttSource, Protocol, QOS_HEADER, Qos, RETAIN_HEADER, RetainHandling,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let broker = MqttBroker::new(Config::new(
        Protocol::V5,
        "127.0.0.1",
        1883,
        "mqtt-publish-example",
    ));
    broker.connect().await?;

    // QoS 2, no retained messages replayed at subscribe.
    let mut readings = MqttSource::new("example/sensors/+")
        .qos(Qos::ExactlyOnce)
        .retain_handling(RetainHandling::DoNotSend)
        .subscribe(&broker)
        .await?;

    // QoS 2 and retained, with a content type and a user property: returns after PUBCOMP.
    let mut headers = Headers::new();
    headers.insert(QOS_HEADER, "2");
    headers.insert(RETAIN_HEADER, "true");
    headers.insert("content-type", "text/plain");
    headers.insert("unit", "celsius");
    broker
        .publish(OutgoingMessage::new("example/sensors/kitchen", b"21.5").with_headers(&headers))
        .await?;

    if let Some(message) = readings.next_message().await {
        let message = message?;
        println!(
            "{:?}: {} ({:?})",
            message.name(),
            String::from_utf8_lossy(message.payload()),
            message.headers().get("unit").map(String::from_utf8_lossy),
        );
        // The PUBREC goes to the server only now.
        message.ack().await?;
    }

    // Request-reply (MQTT 5): a responder answers on the request's response topic.
    let mut requests = MqttSource::new("example/echo").subscribe(&broker).await?;
    let responder = broker.clone();
    tokio::spawn(async move {
        if let Some(Ok(request)) = requests.next_message().await {
            if let Some(reply_to) = request.reply_to() {
                let reply = OutgoingMessage::new(reply_to, request.payload());
                let _ = responder.publish(reply).await;
            }
            let _ = request.ack().await;
        }
    });
    let reply = broker
        .request(
            OutgoingMessage::new("example/echo", b"ping"),
            Duration::from_secs(5),
        )
        .await?;
    println!("reply: {}", String::from_utf8_lossy(&reply.payload));

    // Clear the retained message.
    let mut clear = Headers::new();
    clear.insert(RETAIN_HEADER, "true");
    broker
        .publish(OutgoingMessage::new("example/sensors/kitchen", b"").with_headers(&clear))
        .await?;
    broker.shutdown().await?;
    Ok(())
}
