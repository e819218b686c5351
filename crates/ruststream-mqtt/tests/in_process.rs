//! The in-process mode routes by MQTT's topic rules.
#![cfg(feature = "testing")]

use std::time::Duration;

use ruststream::{
    Broker, IncomingMessage, OutgoingMessage, Publisher, SubscriberExt, SubscriptionSource,
};
use ruststream_mqtt::{MqttBroker, MqttSource};

#[tokio::test]
async fn in_process_routes_wildcards_shared_groups_and_the_dollar_rule() {
    let broker = MqttBroker::in_process();
    broker.connect().await.unwrap();
    let mut all = MqttSource::new("#").subscribe(&broker).await.unwrap();
    let mut rooms = MqttSource::new("home/+/temp")
        .subscribe(&broker)
        .await
        .unwrap();
    let mut a = MqttSource::new("home/#")
        .shared("g")
        .subscribe(&broker)
        .await
        .unwrap();
    let mut b = MqttSource::new("$share/g/home/#")
        .subscribe(&broker)
        .await
        .unwrap();

    broker
        .publish(OutgoingMessage::new("$SYS/x", b"sys"))
        .await
        .unwrap();
    broker
        .publish(OutgoingMessage::new("home/kitchen/temp", b"21"))
        .await
        .unwrap();

    let got = all.next_message().await.unwrap().unwrap();
    assert_eq!(got.payload(), b"21", "`#` does not match a `$` topic");
    let got = rooms.next_message().await.unwrap().unwrap();
    assert_eq!(got.name(), Some("home/kitchen/temp"));

    // The group gets it once, in one of its two members.
    let first = tokio::time::timeout(Duration::from_millis(200), a.next_message()).await;
    let second = tokio::time::timeout(Duration::from_millis(200), b.next_message()).await;
    assert_eq!(usize::from(first.is_ok()) + usize::from(second.is_ok()), 1);

    assert!(
        broker
            .publish(OutgoingMessage::new("home/+", b"x"))
            .await
            .is_err()
    );
    broker.shutdown().await.unwrap();
}
