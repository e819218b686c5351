//! Tracked commits, live: an offset is committed only past settled messages, and a
//! partition's old owner commits nothing after the partition is revoked.

mod support;

use std::time::Duration;

use ruststream::kit::live::fresh_name;
use ruststream::{
    Broker, IncomingMessage, OutgoingMessage, Publisher, SubscriberExt, SubscriptionSource,
};
use ruststream_kafka::{KafkaBroker, KafkaMessage, KafkaSource, KafkaSubscriber, StartFrom};
use support::Created;

const RECEIVE: Duration = Duration::from_secs(20);

async fn next(subscriber: &mut KafkaSubscriber) -> KafkaMessage {
    tokio::time::timeout(RECEIVE, subscriber.next_message())
        .await
        .expect("a message within 20 s")
        .expect("the stream is open")
        .expect("no receive error")
}

async fn setup(test: &str, created: &Created) -> Option<(String, KafkaBroker, String, String)> {
    let servers = support::shared_server(test).await?;
    let broker = KafkaBroker::new(support::config(&servers));
    broker.connect().await.expect("connect");
    let topic = created.topic(fresh_name("commits").replace('_', "."));
    let group = created.group(fresh_name("commits-group"));
    created.topic(KafkaSource::new(&topic).retry_topic_in(&group));
    Some((servers, broker, topic, group))
}

fn source(topic: &str, group: &str) -> KafkaSource {
    KafkaSource::new(topic)
        .group(group)
        .start_from(StartFrom::Earliest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_never_passes_an_unsettled_message() {
    let created = Created::default();
    let Some((servers, broker, topic, group)) =
        setup("a_commit_never_passes_an_unsettled_message", &created).await
    else {
        return;
    };
    let _clean_up = created.on_drop(&servers);
    let mut subscriber = source(&topic, &group).subscribe(&broker).await.unwrap();
    for payload in ["m0", "m1", "m2"] {
        broker
            .publish(OutgoingMessage::new(&topic, payload.as_bytes()))
            .await
            .unwrap();
    }
    let (m0, m1, m2) = (
        next(&mut subscriber).await,
        next(&mut subscriber).await,
        next(&mut subscriber).await,
    );
    assert_eq!(m1.payload(), b"m1");
    // Out of order: the third, then the first; the second stays unsettled.
    m2.ack().await.unwrap();
    m0.ack().await.unwrap();
    subscriber.close().await;
    assert_eq!(
        broker.committed_offsets(&group, &topic).await.unwrap(),
        vec![(0, Some(m1.offset()))],
        "committed up to the unsettled message, not past it"
    );

    // Settled after the subscription ended: commits nothing.
    m1.ack().await.unwrap();
    let mut again = source(&topic, &group).subscribe(&broker).await.unwrap();
    let first = next(&mut again).await;
    assert_eq!(
        first.payload(),
        b"m1",
        "the unsettled message comes back first"
    );
    again.close().await;
    broker.shutdown().await.unwrap();
    created.delete(&servers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settlements_after_a_revocation_commit_nothing() {
    let created = Created::default();
    let Some((servers, broker, topic, group)) =
        setup("settlements_after_a_revocation_commit_nothing", &created).await
    else {
        return;
    };
    let _clean_up = created.on_drop(&servers);
    let mut first = source(&topic, &group).subscribe(&broker).await.unwrap();
    for payload in ["m0", "m1", "m2"] {
        broker
            .publish(OutgoingMessage::new(&topic, payload.as_bytes()))
            .await
            .unwrap();
    }
    let in_flight = vec![
        next(&mut first).await,
        next(&mut first).await,
        next(&mut first).await,
    ];
    // A second member joins: the group revokes every partition before it assigns
    // them again, so the first member's in-flight messages belong to a past assignment.
    let other = KafkaBroker::new(support::config(&servers));
    other.connect().await.unwrap();
    let second = source(&topic, &group).subscribe(&other).await.unwrap();
    for message in in_flight {
        message.ack().await.unwrap();
    }
    first.close().await;
    second.close().await;
    assert_eq!(
        broker.committed_offsets(&group, &topic).await.unwrap(),
        vec![(0, None)],
        "acks of messages received before the revocation commit nothing"
    );
    other.shutdown().await.unwrap();
    broker.shutdown().await.unwrap();
    created.delete(&servers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_group_from_latest_reads_exactly_what_is_published_after_subscribe() {
    let created = Created::default();
    let Some((servers, broker, topic, group)) = setup(
        "a_new_group_from_latest_reads_exactly_what_is_published_after_subscribe",
        &created,
    )
    .await
    else {
        return;
    };
    let _clean_up = created.on_drop(&servers);
    broker
        .publish(OutgoingMessage::new(&topic, b"before"))
        .await
        .unwrap();
    let mut subscriber = KafkaSource::new(&topic)
        .group(&group)
        .start_from(StartFrom::Latest)
        .subscribe(&broker)
        .await
        .unwrap();
    broker
        .publish(OutgoingMessage::new(&topic, b"after"))
        .await
        .unwrap();
    let first = next(&mut subscriber).await;
    assert_eq!(first.payload(), b"after");
    first.ack().await.unwrap();
    subscriber.close().await;
    broker.shutdown().await.unwrap();
    created.delete(&servers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_commits_what_was_settled_before_it_returns() {
    let created = Created::default();
    let Some((servers, broker, topic, group)) = setup(
        "a_graceful_shutdown_commits_what_was_settled_before_it_returns",
        &created,
    )
    .await
    else {
        return;
    };
    let _clean_up = created.on_drop(&servers);
    // No interval commit within the test: what is committed, the shutdown committed.
    let service =
        KafkaBroker::new(support::config(&servers).commit_interval(Duration::from_secs(3600)));
    service.connect().await.unwrap();
    let mut subscriber = source(&topic, &group).subscribe(&service).await.unwrap();
    for payload in ["m0", "m1", "m2"] {
        broker
            .publish(OutgoingMessage::new(&topic, payload.as_bytes()))
            .await
            .unwrap();
    }
    for _ in 0..3 {
        next(&mut subscriber).await.ack().await.unwrap();
    }
    service.shutdown().await.unwrap();
    assert_eq!(
        broker.committed_offsets(&group, &topic).await.unwrap(),
        vec![(0, Some(3))]
    );
    drop(subscriber);
    broker.shutdown().await.unwrap();
    created.delete(&servers).await;
}
