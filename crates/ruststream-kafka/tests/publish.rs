//! Publishing, live: every compression round-trips, an explicit partition is kept, and
//! keys and headers arrive as published.

mod support;

use std::time::Duration;

use ruststream::kit::live::fresh_name;
use ruststream::{Broker, Headers, IncomingMessage, SubscriberExt, SubscriptionSource};
use ruststream_kafka::{
    Compression, KafkaBroker, KafkaMessage, KafkaSource, KafkaSubscriber, Record, StartFrom,
};
use support::Created;

async fn next(subscriber: &mut KafkaSubscriber) -> KafkaMessage {
    tokio::time::timeout(Duration::from_secs(20), subscriber.next_message())
        .await
        .expect("a message within 20 s")
        .expect("the stream is open")
        .expect("no receive error")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_round_trips_with_key_partition_and_headers() {
    let test = "every_compression_round_trips_with_key_partition_and_headers";
    let Some(servers) = support::shared_server(test).await else {
        return;
    };
    let created = Created::default();
    let _clean_up = created.on_drop(&servers);
    let reader = KafkaBroker::new(support::config(&servers));
    reader.connect().await.unwrap();
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
    ] {
        let topic = created.topic(fresh_name("publish").replace('_', "."));
        let group = created.group(fresh_name("publish-group"));
        created.topic(KafkaSource::new(&topic).retry_topic_in(&group));
        reader.create_topics(&[&topic], 3).await.unwrap();
        let mut subscriber = KafkaSource::new(&topic)
            .group(&group)
            .start_from(StartFrom::Earliest)
            .subscribe(&reader)
            .await
            .unwrap();
        let writer = KafkaBroker::new(support::config(&servers).compression(compression));
        writer.connect().await.unwrap();
        let payload = vec![b'x'; 10_000];
        let headers: Headers = [("trace", &b"\x00\x01binary"[..]), ("trace", b"second")]
            .into_iter()
            .collect();
        let stored = writer
            .send(
                Record::new(&topic, &payload)
                    .key(b"customer-7")
                    .partition(2)
                    .headers(&headers),
            )
            .await
            .unwrap();
        assert_eq!(stored.partition, 2, "{compression:?}");
        let message = next(&mut subscriber).await;
        assert_eq!(message.payload(), &payload[..], "{compression:?}");
        assert_eq!(message.partition(), 2, "{compression:?}");
        assert_eq!(message.offset(), stored.offset, "{compression:?}");
        assert_eq!(message.key(), Some(&b"customer-7"[..]), "{compression:?}");
        assert_eq!(message.headers(), &headers, "{compression:?}");
        message.ack().await.unwrap();
        subscriber.close().await;
        writer.shutdown().await.unwrap();
    }
    reader.shutdown().await.unwrap();
    created.delete(&servers).await;
}
