//! Behaviour of the embedded memory broker beyond the shared conformance suites:
//! configuration limits, back-pressure, validation and bad input.
#![cfg(feature = "memory")]

use std::time::Duration;

use ruststream::memory::{MemoryBroker, MemoryConfig, MemoryError, MemorySource};
use ruststream::prelude::*;

const WAIT: Duration = Duration::from_secs(5);

async fn connected(config: MemoryConfig) -> MemoryBroker {
    let broker = MemoryBroker::with_config(config);
    broker.connect().await.expect("connect");
    broker
}

/// Publishes one message per number, its body that one byte.
async fn publish_numbered(broker: &MemoryBroker, name: &str, numbers: std::ops::Range<u8>) {
    for i in numbers {
        broker
            .publish(OutgoingMessage::new(name, &[i]))
            .await
            .unwrap();
    }
}

async fn next<S: Subscriber>(sub: &mut S) -> S::Message {
    tokio::time::timeout(WAIT, sub.next_message())
        .await
        .expect("a message within the wait")
        .expect("stream open")
        .expect("no stream error")
}

async fn nothing_within<S: Subscriber>(sub: &mut S, wait: Duration) -> bool {
    tokio::time::timeout(wait, sub.next_message())
        .await
        .is_err()
}

#[tokio::test]
async fn use_before_connect_names_the_fix() {
    let broker = MemoryBroker::new();
    let err = broker
        .publish(OutgoingMessage::new("a", b"x"))
        .await
        .unwrap_err();
    assert_eq!(err, MemoryError::NotConnected);
    assert!(err.to_string().contains("connect()"));
    assert!(matches!(
        broker.subscribe("a").await,
        Err(MemoryError::NotConnected)
    ));
}

#[tokio::test]
async fn publish_to_a_wildcard_is_refused_with_the_reason() {
    let broker = connected(MemoryConfig::default()).await;
    let err = broker
        .publish(OutgoingMessage::new("orders.*", b"x"))
        .await
        .unwrap_err();
    assert!(matches!(err, MemoryError::InvalidName(_)));
    assert!(
        err.to_string()
            .contains("wildcards are only allowed in subscriptions"),
        "{err}"
    );
}

#[tokio::test]
async fn invalid_subscription_pattern_is_refused() {
    let broker = connected(MemoryConfig::default()).await;
    let err = broker.subscribe("a.>.b").await.unwrap_err();
    assert!(matches!(err, MemoryError::InvalidPattern(_)), "{err}");
}

#[tokio::test]
async fn oversized_payload_is_refused_and_nothing_is_delivered() {
    let broker = connected(MemoryConfig::default().with_max_payload(1024)).await;
    let mut sub = broker.subscribe("big").await.unwrap();
    let payload = vec![7u8; 1025];
    let err = broker
        .publish(OutgoingMessage::new("big", &payload))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        MemoryError::PayloadTooLarge {
            name: "big".into(),
            size: 1025,
            limit: 1024
        }
    );
    assert!(err.to_string().contains("max_payload"));
    assert!(nothing_within(&mut sub, Duration::from_millis(50)).await);
}

#[tokio::test]
async fn sixteen_mib_binary_payload_with_binary_headers_round_trips() {
    let broker = connected(MemoryConfig::default()).await;
    let mut sub = broker.subscribe("huge").await.unwrap();
    let payload: Vec<u8> = (0..16 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let mut headers = Headers::new();
    headers.append("bin", vec![0u8, 0xff, b'\r', b'\n']);
    headers.append("bin", Vec::<u8>::new());
    broker
        .publish(OutgoingMessage::new("huge", &payload).with_headers(&headers))
        .await
        .unwrap();
    let message = next(&mut sub).await;
    assert_eq!(message.payload(), &payload[..]);
    assert_eq!(message.headers(), &headers);
    message.ack().await.unwrap();
}

#[tokio::test]
async fn empty_and_non_utf8_payloads_round_trip() {
    let broker = connected(MemoryConfig::default()).await;
    let mut sub = broker.subscribe("odd").await.unwrap();
    for payload in [&b""[..], &[0xc3, 0x28, 0xff, 0x00][..]] {
        broker
            .publish(OutgoingMessage::new("odd", payload))
            .await
            .unwrap();
        let message = next(&mut sub).await;
        assert_eq!(message.payload(), payload);
        message.ack().await.unwrap();
    }
}

#[tokio::test]
async fn a_full_queue_holds_the_publisher_back_until_the_consumer_reads() {
    let broker = connected(MemoryConfig::default().with_queue_capacity(2)).await;
    let mut sub = broker.subscribe("bp").await.unwrap();
    publish_numbered(&broker, "bp", 0..2).await;
    let publisher = broker.clone();
    let third =
        tokio::spawn(async move { publisher.publish(OutgoingMessage::new("bp", &[2])).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!third.is_finished(), "the third publish waits for room");
    let first = next(&mut sub).await;
    assert_eq!(first.payload(), &[0]);
    first.ack().await.unwrap();
    tokio::time::timeout(WAIT, third)
        .await
        .expect("publish resumes")
        .unwrap()
        .unwrap();
    for expected in 1..3u8 {
        let message = next(&mut sub).await;
        assert_eq!(message.payload(), &[expected]);
        message.ack().await.unwrap();
    }
}

/// The queue wakes one waiting publisher as it stops being full, and each woken publisher
/// passes the wake-up on while there is room: none is left waiting with room free.
#[tokio::test]
async fn every_publisher_waiting_on_a_full_queue_gets_through() {
    let broker = connected(MemoryConfig::default().with_queue_capacity(2)).await;
    let mut sub = broker.subscribe("crowd").await.unwrap();
    let publishers: Vec<_> = (0..4u8)
        .map(|p| {
            let broker = broker.clone();
            tokio::spawn(async move {
                for i in 0..5u8 {
                    broker
                        .publish(OutgoingMessage::new("crowd", &[p, i]))
                        .await
                        .expect("room comes before the publish timeout");
                }
            })
        })
        .collect();
    let mut received = Vec::new();
    for _ in 0..20 {
        let message = next(&mut sub).await;
        received.push(message.payload().to_vec());
        message.ack().await.unwrap();
        tokio::task::yield_now().await;
    }
    for publisher in publishers {
        tokio::time::timeout(WAIT, publisher)
            .await
            .expect("every publisher finishes")
            .unwrap();
    }
    received.sort();
    let expected: Vec<Vec<u8>> = (0..4u8)
        .flat_map(|p| (0..5u8).map(move |i| vec![p, i]))
        .collect();
    assert_eq!(received, expected, "each message once, none lost");
    assert!(nothing_within(&mut sub, Duration::from_millis(50)).await);
}

/// A fan-out subscriber takes every ready message at once; those it holds still count
/// against the queue's capacity, so the bound holds, and handing them out makes room.
#[tokio::test]
async fn messages_taken_ahead_count_against_the_capacity() {
    let broker = connected(MemoryConfig::default().with_queue_capacity(4)).await;
    let mut sub = broker.subscribe("ahead").await.unwrap();
    publish_numbered(&broker, "ahead", 0..4).await;
    // Takes all four ahead and hands out the first: three held, one place free.
    let first = next(&mut sub).await;
    assert_eq!(first.payload(), &[0]);
    first.ack().await.unwrap();
    broker
        .publish(OutgoingMessage::new("ahead", &[4]))
        .await
        .unwrap();
    let waiting = {
        let broker = broker.clone();
        tokio::spawn(async move {
            broker
                .publish(OutgoingMessage::new("ahead", &[5]))
                .await
                .expect("room comes once a held message is handed out")
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !waiting.is_finished(),
        "three held and one queued fill a queue of four"
    );
    let mut received = Vec::new();
    for _ in 0..5 {
        let message = next(&mut sub).await;
        received.push(message.payload()[0]);
        message.ack().await.unwrap();
    }
    tokio::time::timeout(WAIT, waiting)
        .await
        .expect("the waiting publisher gets through")
        .unwrap();
    assert_eq!(received, [1, 2, 3, 4, 5], "in publish order, none lost");
    assert!(nothing_within(&mut sub, Duration::from_millis(50)).await);
}

/// Publishers on other threads keep a small queue full while its fan-out subscriber takes
/// messages ahead in batches: every wake-up for room arrives (no publish times out) and
/// every message arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_publishers_and_a_batching_subscriber_lose_nothing() {
    const PUBLISHERS: u16 = 4;
    const EACH: u16 = 2_000;
    let config = MemoryConfig::default()
        .with_queue_capacity(8)
        .with_publish_timeout(WAIT);
    let broker = connected(config).await;
    let mut sub = broker.subscribe("busy").await.unwrap();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let broker = broker.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    let body = [p.to_be_bytes(), i.to_be_bytes()].concat();
                    broker
                        .publish(OutgoingMessage::new("busy", &body))
                        .await
                        .expect("room comes before the publish timeout");
                }
            })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for n in 0..usize::from(PUBLISHERS * EACH) {
        let message = next(&mut sub).await;
        assert!(seen.insert(message.payload().to_vec()), "delivered twice");
        message.ack().await.unwrap();
        if n % 97 == 0 {
            tokio::task::yield_now().await; // let the publishers refill meanwhile
        }
    }
    for publisher in publishers {
        tokio::time::timeout(WAIT, publisher)
            .await
            .expect("every publisher finishes")
            .unwrap();
    }
    assert_eq!(seen.len(), usize::from(PUBLISHERS * EACH));
    assert!(nothing_within(&mut sub, Duration::from_millis(50)).await);
}

#[tokio::test]
async fn a_queue_that_stays_full_fails_the_publish_clearly() {
    let config = MemoryConfig::default()
        .with_queue_capacity(1)
        .with_publish_timeout(Duration::from_millis(30));
    let broker = connected(config).await;
    let _sub = broker.subscribe("stuck").await.unwrap();
    broker
        .publish(OutgoingMessage::new("stuck", b"1"))
        .await
        .unwrap();
    let err = broker
        .publish(OutgoingMessage::new("stuck", b"2"))
        .await
        .unwrap_err();
    assert!(matches!(err, MemoryError::Backpressure { .. }), "{err}");
    assert!(err.to_string().contains("queue_capacity"));
}

#[tokio::test]
async fn redelivery_count_grows_with_each_requeue() {
    let broker = connected(MemoryConfig::default()).await;
    let mut sub = broker.subscribe("count").await.unwrap();
    broker
        .publish(OutgoingMessage::new("count", b"x"))
        .await
        .unwrap();
    for expected in 0..3 {
        let message = next(&mut sub).await;
        assert_eq!(message.redelivery_count(), Some(expected));
        message.nack(true).await.unwrap();
    }
}

#[tokio::test]
async fn a_group_keeps_messages_while_no_member_is_subscribed() {
    let server = MemoryBroker::new();
    server.connect().await.unwrap();
    let first = MemorySource::new("jobs")
        .group("workers")
        .subscribe(&server)
        .await
        .unwrap();
    drop(first);
    server
        .publish(OutgoingMessage::new("jobs", b"kept"))
        .await
        .unwrap();
    let mut again = MemorySource::new("jobs")
        .group("workers")
        .subscribe(&server)
        .await
        .unwrap();
    assert_eq!(next(&mut again).await.payload(), b"kept");
}

#[tokio::test]
async fn shutdown_of_one_connection_leaves_the_others_working() {
    let server = MemoryBroker::new();
    server.connect().await.unwrap();
    let other = server.new_connection();
    other.connect().await.unwrap();
    let mut sub = other.subscribe("shared").await.unwrap();
    let mut closing = server.subscribe("shared").await.unwrap();
    server.shutdown().await.unwrap();
    assert!(
        tokio::time::timeout(WAIT, closing.next_message())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        server.publish(OutgoingMessage::new("shared", b"x")).await,
        Err(MemoryError::Closed)
    );
    other
        .publish(OutgoingMessage::new("shared", b"y"))
        .await
        .unwrap();
    assert_eq!(next(&mut sub).await.payload(), b"y");
}

#[tokio::test]
async fn connect_after_shutdown_reopens_the_connection() {
    let broker = connected(MemoryConfig::default()).await;
    broker.shutdown().await.unwrap();
    broker.connect().await.unwrap();
    let mut sub = broker.subscribe("again").await.unwrap();
    broker
        .publish(OutgoingMessage::new("again", b"x"))
        .await
        .unwrap();
    assert_eq!(next(&mut sub).await.payload(), b"x");
}

#[tokio::test]
async fn request_without_responders_fails_at_once() {
    let broker = connected(MemoryConfig::default()).await;
    let err = broker
        .request(
            OutgoingMessage::new("nobody.home", b"?"),
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
    assert_eq!(err, MemoryError::NoResponders("nobody.home".into()));
}

#[tokio::test]
async fn a_message_names_its_concrete_subject_under_a_wildcard() {
    let broker = connected(MemoryConfig::default()).await;
    let mut sub = broker.subscribe("orders.>").await.unwrap();
    broker
        .publish(OutgoingMessage::new("orders.eu.created", b"x").with_key(b"customer-1"))
        .await
        .unwrap();
    let message = next(&mut sub).await;
    assert_eq!(message.name(), Some("orders.eu.created"));
    assert_eq!(message.partition_key(), Some(&b"customer-1"[..]));
}

#[tokio::test]
async fn describe_server_names_the_protocol() {
    let spec = MemoryBroker::new().describe_server();
    assert_eq!(spec.protocol, "memory");
    assert_eq!(spec.host, "in-process");
}

mod bad_input {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the name, payload or header bytes, publishing either delivers them
        /// intact or fails with an error; it never panics.
        #[test]
        fn arbitrary_messages_round_trip_or_fail_cleanly(
            name in ".{0,20}",
            payload in prop::collection::vec(any::<u8>(), 0..512),
            header_name in ".{0,8}",
            header_value in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let broker = connected(MemoryConfig::default()).await;
                let mut sub = broker.subscribe(">").await.unwrap();
                let mut headers = Headers::new();
                headers.append(header_name.clone(), header_value.clone());
                let sent = broker.publish(OutgoingMessage::new(&name, &payload).with_headers(&headers)).await;
                if sent.is_ok() {
                    let message = next(&mut sub).await;
                    assert_eq!(message.payload(), &payload[..]);
                    assert_eq!(message.headers().get(&header_name), Some(&header_value[..]));
                    assert_eq!(message.name(), Some(name.as_str()));
                }
            });
        }
    }
}

#[tokio::test]
async fn backlog_counts_ready_and_scheduled_messages() {
    let broker = connected(MemoryConfig::default()).await;
    let mut sub = broker.subscribe("backlog").await.unwrap();
    assert_eq!(broker.backlog(), 0);
    broker
        .publish(OutgoingMessage::new("backlog", b"1"))
        .await
        .unwrap();
    broker
        .publish(OutgoingMessage::new("backlog", b"2"))
        .await
        .unwrap();
    assert_eq!(broker.backlog(), 2);
    let first = next(&mut sub).await;
    assert_eq!(
        broker.backlog(),
        1,
        "a delivered message leaves the backlog"
    );
    first.nack_after(Duration::from_millis(50)).await.unwrap();
    assert_eq!(broker.backlog(), 2, "a scheduled redelivery counts");
    let second = next(&mut sub).await;
    second.ack().await.unwrap();
    let again = next(&mut sub).await;
    assert_eq!(again.payload(), b"1");
    assert_eq!(broker.backlog(), 0);
}

/// Envelopes are refilled in place once settled: one still held, or waiting for its
/// redelivery, must keep its own body however many messages pass meanwhile.
#[tokio::test]
async fn messages_held_or_requeued_keep_their_bodies_while_others_flow() {
    let broker = connected(MemoryConfig::default().with_queue_capacity(8)).await;
    let mut sub = broker.subscribe("held").await.unwrap();
    publish_numbered(&broker, "held", 0..2).await;
    let held = next(&mut sub).await;
    let requeued = next(&mut sub).await;
    requeued
        .nack_after(Duration::from_millis(200))
        .await
        .unwrap();
    for round in 0..50u8 {
        publish_numbered(&broker, "held", 100..108).await;
        for expected in 100..108u8 {
            let message = next(&mut sub).await;
            assert_eq!(message.payload(), [expected], "round {round}");
            message.ack().await.unwrap();
        }
    }
    assert_eq!(held.payload(), [0], "the held message kept its body");
    let redelivered = next(&mut sub).await;
    assert_eq!(
        redelivered.payload(),
        [1],
        "the requeued message kept its body"
    );
    assert_eq!(redelivered.redelivery_count(), Some(1));
    redelivered.ack().await.unwrap();
    held.nack(true).await.unwrap();
    let again = next(&mut sub).await;
    assert_eq!(again.payload(), [0]);
    assert_eq!(again.redelivery_count(), Some(1));
}

/// Each fan-out subscription holds its own copy: one settling or redelivering does not
/// touch what another holds.
#[tokio::test]
async fn fan_out_subscribers_settle_their_own_copies() {
    let broker = connected(MemoryConfig::default()).await;
    let mut first = broker.subscribe("copies").await.unwrap();
    let mut second = broker.subscribe("copies").await.unwrap();
    publish_numbered(&broker, "copies", 7..8).await;
    let kept = next(&mut second).await;
    let message = next(&mut first).await;
    message.nack(true).await.unwrap();
    let again = next(&mut first).await;
    assert_eq!(again.redelivery_count(), Some(1));
    again.ack().await.unwrap();
    publish_numbered(&broker, "copies", 9..10).await;
    assert_eq!(next(&mut first).await.payload(), [9]);
    assert_eq!(kept.payload(), [7]);
    assert_eq!(
        kept.redelivery_count(),
        Some(0),
        "the other copy was not redelivered"
    );
    kept.ack().await.unwrap();
    assert_eq!(next(&mut second).await.payload(), [9]);
}

/// A message that outlives its subscription is not redelivered anywhere, and settling it
/// is still fine.
#[tokio::test]
async fn a_message_outliving_its_subscription_settles_quietly() {
    let broker = connected(MemoryConfig::default()).await;
    let mut sub = broker.subscribe("gone").await.unwrap();
    publish_numbered(&broker, "gone", 1..3).await;
    let first = next(&mut sub).await;
    let second = next(&mut sub).await;
    drop(sub);
    // A redelivery goes back to its own queue only, never to another subscription of
    // the same name.
    let mut later = broker.subscribe("gone").await.unwrap();
    assert_eq!(first.payload(), [1]);
    first.nack(true).await.unwrap();
    drop(second); // unsettled: would be redelivered, but its queue is gone
    assert_eq!(broker.backlog(), 0);
    assert!(nothing_within(&mut later, Duration::from_millis(100)).await);
}
