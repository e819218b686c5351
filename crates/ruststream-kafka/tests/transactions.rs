//! Kafka transactions, live: a consume-transform-produce step whose consumed offsets
//! commit inside the producer's transaction.

mod support;

use std::time::Duration;

use ruststream::kit::live::fresh_name;
use ruststream::{
    Broker, IncomingMessage, OutgoingMessage, Publisher, SubscriberExt, SubscriptionSource,
    Transaction, TransactionalPublisher,
};
use ruststream_kafka::{
    KafkaBroker, KafkaMessage, KafkaSource, KafkaSubscriber, Record, StartFrom,
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
async fn consumed_offsets_commit_inside_the_producers_transaction() {
    let test = "consumed_offsets_commit_inside_the_producers_transaction";
    let Some(servers) = support::shared_server(test).await else {
        return;
    };
    let created = Created::default();
    let _clean_up = created.on_drop(&servers);
    let input = created.topic(fresh_name("eos.input").replace('_', "."));
    let output = created.topic(fresh_name("eos.output").replace('_', "."));
    let group = created.group(fresh_name("eos-group"));
    created.topic(KafkaSource::new(&input).retry_topic_in(&group));
    // The subscription's own commits wait an hour: any commit seen here is the
    // transaction's.
    let broker =
        KafkaBroker::new(support::config(&servers).commit_interval(Duration::from_secs(3600)));
    broker.connect().await.unwrap();
    let mut consumer = KafkaSource::new(&input)
        .group(&group)
        .start_from(StartFrom::Earliest)
        .subscribe(&broker)
        .await
        .unwrap();
    for n in 0..4 {
        broker
            .publish(OutgoingMessage::new(
                &input,
                format!("order-{n}").as_bytes(),
            ))
            .await
            .unwrap();
    }
    let producer = broker.transactional(&fresh_name("eos-tx")).unwrap();

    for _ in 0..3 {
        let message = next(&mut consumer).await;
        let transformed = [message.payload(), b"-billed"].concat();
        let mut transaction = producer.begin().await.unwrap();
        transaction
            .send(Record::new(&output, &transformed).key(b"billing"))
            .await
            .unwrap();
        transaction.consumed(message);
        transaction.commit().await.unwrap();
    }
    assert_eq!(
        broker.committed_offsets(&group, &input).await.unwrap(),
        vec![(0, Some(3))],
        "the three consumed offsets committed with their transactions"
    );

    // An aborted step commits no offset: its input stays to be consumed again.
    let fourth = next(&mut consumer).await;
    let mut transaction = producer.begin().await.unwrap();
    transaction
        .send(Record::new(&output, b"never"))
        .await
        .unwrap();
    transaction.consumed(fourth);
    transaction.abort().await.unwrap();
    assert_eq!(
        broker.committed_offsets(&group, &input).await.unwrap(),
        vec![(0, Some(3))]
    );

    let mut reader = KafkaSource::new(&output)
        .group(created.group(fresh_name("eos-reader")))
        .start_from(StartFrom::Earliest)
        .subscribe(&broker)
        .await
        .unwrap();
    for n in 0..3 {
        let billed = next(&mut reader).await;
        assert_eq!(billed.payload(), format!("order-{n}-billed").as_bytes());
        billed.ack().await.unwrap();
    }
    reader.close().await;
    consumer.close().await;
    broker.shutdown().await.unwrap();
    created.delete(&servers).await;
}
