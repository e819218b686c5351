//! What lists and streams promise beyond the conformance checks, against the live server:
//! a consumer that dies loses nothing, delayed retries survive the consumer, deliveries
//! past `max_deliver` go to the dead-letter stream, start positions and trimming.

mod support;

use std::time::{Duration, Instant};

use ruststream::prelude::*;
use ruststream::{Headers, SubscriptionSource};
use ruststream_redis::{RedisBroker, RedisSource, StartFrom};

async fn broker(url: &str) -> RedisBroker {
    let broker = RedisBroker::new(support::config(url));
    broker.connect().await.unwrap();
    broker
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn next(
    subscriber: &mut ruststream_redis::RedisSubscriber,
) -> ruststream_redis::RedisMessage {
    tokio::time::timeout(Duration::from_secs(10), subscriber.next_message())
        .await
        .expect("a message within 10 s")
        .expect("the stream is open")
        .expect("no error")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_consumer_dropped_with_unacked_entries_loses_nothing() {
    let Some(url) =
        support::shared_server("a_stream_consumer_dropped_with_unacked_entries_loses_nothing")
            .await
    else {
        return;
    };
    let prefix = support::fresh_prefix("killed");
    let clean_up = support::clean_up(&url, &prefix);
    let stream = format!("{prefix}:orders");
    let source = || {
        RedisSource::stream(&stream)
            .group("billing")
            .claim_idle(Duration::from_secs(1))
            .block(Duration::from_millis(100))
    };

    let first = broker(&url).await;
    let mut dying = source()
        .consumer("billing-1")
        .subscribe(&first)
        .await
        .unwrap();
    for n in 0..10 {
        first
            .streams()
            .publish(OutgoingMessage::new(&stream, format!("{n}").as_bytes()))
            .await
            .unwrap();
    }
    // It acks three, holds the rest, and dies without settling them.
    let mut held = Vec::new();
    for n in 0..10 {
        let message = next(&mut dying).await;
        if n < 3 {
            message.ack().await.unwrap();
        } else {
            held.push(message);
        }
    }
    drop(dying);
    std::mem::forget(held);
    first.shutdown().await.unwrap();

    let second = broker(&url).await;
    let mut survivor = source()
        .consumer("billing-2")
        .subscribe(&second)
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 3..10 {
        let message = next(&mut survivor).await;
        assert_eq!(message.redelivery_count(), Some(1), "delivered once before");
        got.push(String::from_utf8(message.payload().to_vec()).unwrap());
        message.ack().await.unwrap();
    }
    got.sort();
    assert_eq!(got, ["3", "4", "5", "6", "7", "8", "9"]);
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), survivor.next_message())
            .await
            .is_err(),
        "the acked entries never come back"
    );
    second.shutdown().await.unwrap();
    clean_up.run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_consumer_that_dies_has_its_in_flight_messages_moved_back() {
    let Some(url) =
        support::shared_server("a_list_consumer_that_dies_has_its_in_flight_messages_moved_back")
            .await
    else {
        return;
    };
    let prefix = support::fresh_prefix("listkill");
    let clean_up = support::clean_up(&url, &prefix);
    let list = format!("{prefix}:jobs");
    let source = || {
        RedisSource::list(&list)
            .visibility_timeout(Duration::from_secs(1))
            .block(Duration::from_millis(100))
    };
    let first = broker(&url).await;
    let mut dying = source().subscribe(&first).await.unwrap();
    for n in 0..5 {
        first
            .lists()
            .publish(OutgoingMessage::new(&list, format!("{n}").as_bytes()))
            .await
            .unwrap();
    }
    let held = next(&mut dying).await;
    assert_eq!(held.payload(), b"0");
    drop(dying);
    std::mem::forget(held);
    first.shutdown().await.unwrap();

    let second = broker(&url).await;
    let mut survivor = source().subscribe(&second).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..5 {
        let message = next(&mut survivor).await;
        got.push(String::from_utf8(message.payload().to_vec()).unwrap());
        message.ack().await.unwrap();
    }
    got.sort();
    assert_eq!(got, ["0", "1", "2", "3", "4"], "nothing lost");
    second.shutdown().await.unwrap();
    clean_up.run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_list_retry_survives_its_consumer_and_waits_its_delay() {
    let Some(url) =
        support::shared_server("a_delayed_list_retry_survives_its_consumer_and_waits_its_delay")
            .await
    else {
        return;
    };
    let prefix = support::fresh_prefix("listdelay");
    let clean_up = support::clean_up(&url, &prefix);
    let list = format!("{prefix}:jobs");
    let source = || RedisSource::list(&list).block(Duration::from_millis(100));
    let first = broker(&url).await;
    let mut consumer = source().subscribe(&first).await.unwrap();
    first
        .lists()
        .publish(OutgoingMessage::new(&list, b"later"))
        .await
        .unwrap();
    let message = next(&mut consumer).await;
    let nacked_at = Instant::now();
    message.nack_after(Duration::from_secs(2)).await.unwrap();
    // The consumer goes away: the due message is in Redis, not in a timer.
    drop(consumer);
    first.shutdown().await.unwrap();

    let second = broker(&url).await;
    let mut consumer = source().subscribe(&second).await.unwrap();
    let again = next(&mut consumer).await;
    assert_eq!(again.payload(), b"later");
    let waited = nacked_at.elapsed();
    assert!(
        waited >= Duration::from_millis(1900),
        "came back after {waited:?}"
    );
    again.ack().await.unwrap();
    second.shutdown().await.unwrap();
    clean_up.run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_entry_past_max_deliver_goes_to_the_dead_letter_stream() {
    let Some(url) =
        support::shared_server("a_stream_entry_past_max_deliver_goes_to_the_dead_letter_stream")
            .await
    else {
        return;
    };
    let prefix = support::fresh_prefix("dlq");
    let clean_up = support::clean_up(&url, &prefix);
    let stream = format!("{prefix}:orders");
    let dead = format!("{prefix}:dead");
    let broker = broker(&url).await;
    let mut consumer = RedisSource::stream(&stream)
        .group("billing")
        .max_deliver(2)
        .dead_letter(&dead)
        .claim_idle(Duration::from_secs(1))
        .block(Duration::from_millis(100))
        .subscribe(&broker)
        .await
        .unwrap();
    let mut headers = Headers::new();
    headers.insert("tenant", "eu");
    broker
        .streams()
        .publish(OutgoingMessage::new(&stream, b"poison").with_headers(&headers))
        .await
        .unwrap();
    for delivery in 0..2 {
        let message = next(&mut consumer).await;
        assert_eq!(message.redelivery_count(), Some(delivery));
        message.nack(true).await.unwrap();
    }
    assert!(
        tokio::time::timeout(Duration::from_secs(2), consumer.next_message())
            .await
            .is_err(),
        "not delivered a third time"
    );
    let mut connection = raw(&url).await;
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(&dead)
        .arg("-")
        .arg("+")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(entries.ids.len(), 1, "one dead-lettered entry");
    let fields = &entries.ids[0].map;
    assert_eq!(
        fields.get("__data__"),
        Some(&redis::Value::BulkString(b"poison".to_vec()))
    );
    assert_eq!(
        fields.get("tenant"),
        Some(&redis::Value::BulkString(b"eu".to_vec()))
    );
    let pending: (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
        .arg(&stream)
        .arg("billing")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(pending.0, 0, "acked in the source stream");
    broker.shutdown().await.unwrap();
    clean_up.run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_can_start_from_the_beginning_and_publishes_trim_the_stream() {
    let Some(url) = support::shared_server(
        "a_group_can_start_from_the_beginning_and_publishes_trim_the_stream",
    )
    .await
    else {
        return;
    };
    let prefix = support::fresh_prefix("start");
    let clean_up = support::clean_up(&url, &prefix);
    let stream = format!("{prefix}:events");
    let broker = broker(&url).await;
    let publisher = broker.streams().maxlen_exact(5);
    for n in 0..20 {
        publisher
            .publish(OutgoingMessage::new(&stream, format!("{n}").as_bytes()))
            .await
            .unwrap();
    }
    let mut connection = raw(&url).await;
    let len: u64 = redis::cmd("XLEN")
        .arg(&stream)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(len, 5, "MAXLEN = 5");

    let mut from_start = RedisSource::stream(&stream)
        .group("replay")
        .start(StartFrom::Beginning)
        .subscribe(&broker)
        .await
        .unwrap();
    for n in 15..20 {
        let message = next(&mut from_start).await;
        assert_eq!(message.payload(), format!("{n}").as_bytes());
        message.ack().await.unwrap();
    }
    let mut only_new = RedisSource::stream(&stream)
        .group("live")
        .subscribe(&broker)
        .await
        .unwrap();
    publisher
        .publish(OutgoingMessage::new(&stream, b"new"))
        .await
        .unwrap();
    assert_eq!(next(&mut only_new).await.payload(), b"new");
    broker.shutdown().await.unwrap();
    clean_up.run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_cannot_requeue_and_says_so() {
    let Some(url) = support::shared_server("pubsub_cannot_requeue_and_says_so").await else {
        return;
    };
    let prefix = support::fresh_prefix("pubsub");
    let channel = format!("{prefix}:news");
    let broker = broker(&url).await;
    let mut subscriber = RedisSource::channel(&channel)
        .subscribe(&broker)
        .await
        .unwrap();
    for _ in 0..2 {
        broker
            .publish(OutgoingMessage::new(&channel, b"x"))
            .await
            .unwrap();
    }
    let error = next(&mut subscriber).await.nack(true).await.unwrap_err();
    assert!(
        matches!(error, ruststream::AckError::Unsupported(_)),
        "{error}"
    );
    let error = next(&mut subscriber)
        .await
        .nack_after(Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ruststream::AckError::Unsupported(_)),
        "{error}"
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_retry_longer_than_claim_idle_waits_its_whole_delay() {
    let Some(url) =
        support::shared_server("a_stream_retry_longer_than_claim_idle_waits_its_whole_delay").await
    else {
        return;
    };
    let prefix = support::fresh_prefix("longdelay");
    let clean_up = support::clean_up(&url, &prefix);
    let stream = format!("{prefix}:orders");
    let broker = broker(&url).await;
    let mut consumer = RedisSource::stream(&stream)
        .group("billing")
        .claim_idle(Duration::from_secs(1))
        .block(Duration::from_millis(100))
        .subscribe(&broker)
        .await
        .unwrap();
    broker
        .streams()
        .publish(OutgoingMessage::new(&stream, b"later"))
        .await
        .unwrap();
    let message = next(&mut consumer).await;
    let nacked_at = Instant::now();
    message.nack_after(Duration::from_secs(3)).await.unwrap();
    let again = next(&mut consumer).await;
    let waited = nacked_at.elapsed();
    assert_eq!(again.payload(), b"later");
    assert_eq!(again.redelivery_count(), Some(1));
    assert!(
        waited >= Duration::from_millis(2900) && waited < Duration::from_secs(6),
        "came back after {waited:?}, not after 3 s"
    );
    again.ack().await.unwrap();
    broker.shutdown().await.unwrap();
    clean_up.run().await;
}
