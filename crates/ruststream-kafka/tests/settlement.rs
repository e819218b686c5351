//! Settlement the Kafka way, live: retries through the retry topic never hold back
//! later messages, a delayed retry waits in its paused retry partition, poison
//! messages go to a dead-letter topic, and keyed lanes keep per-key order.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ruststream::kit::live::fresh_name;
use ruststream::runtime::{App, Router, State, SubscriberDef, handler_fn};
use ruststream::{
    Broker, Headers, IncomingMessage, OutgoingMessage, Publisher, SubscriberExt, SubscriptionSource,
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

struct Setup {
    servers: String,
    broker: KafkaBroker,
    topic: String,
    group: String,
    created: Created,
    _clean_up: ruststream::kit::live::CleanUp,
}

async fn setup(test: &str) -> Option<Setup> {
    let servers = support::shared_server(test).await?;
    let created = Created::default();
    let broker = KafkaBroker::new(support::config(&servers));
    broker.connect().await.expect("connect");
    let topic = created.topic(fresh_name("settle").replace('_', "."));
    let group = created.group(fresh_name("settle-group"));
    created.topic(KafkaSource::new(&topic).retry_topic_in(&group));
    Some(Setup {
        _clean_up: created.on_drop(&servers),
        servers,
        broker,
        topic,
        group,
        created,
    })
}

impl Setup {
    fn source(&self) -> KafkaSource {
        KafkaSource::new(&self.topic)
            .group(&self.group)
            .start_from(StartFrom::Earliest)
    }

    async fn publish(&self, payload: &str) {
        let mut headers = Headers::new();
        headers.insert("correlation-id", format!("id-{payload}"));
        self.broker
            .publish(OutgoingMessage::new(&self.topic, payload.as_bytes()).with_headers(&headers))
            .await
            .expect("publish");
    }

    async fn finish(self) {
        self.broker.shutdown().await.unwrap();
        self.created.delete(&self.servers).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requeued_message_comes_back_after_later_messages_without_losing_them() {
    let Some(setup) =
        setup("a_requeued_message_comes_back_after_later_messages_without_losing_them").await
    else {
        return;
    };
    let mut subscriber = setup.source().subscribe(&setup.broker).await.unwrap();
    for payload in ["m0", "m1", "m2"] {
        setup.publish(payload).await;
    }
    let first = next(&mut subscriber).await;
    assert_eq!(
        (first.payload(), first.redelivery_count()),
        (&b"m0"[..], None)
    );
    first.nack(true).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let message = next(&mut subscriber).await;
        seen.push((
            String::from_utf8(message.payload().to_vec()).unwrap(),
            message.redelivery_count(),
            message
                .headers()
                .get_str("correlation-id")
                .map(str::to_owned),
        ));
        message.ack().await.unwrap();
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("m0".to_owned(), Some(1), Some("id-m0".to_owned())),
            ("m1".to_owned(), None, Some("id-m1".to_owned())),
            ("m2".to_owned(), None, Some("id-m2".to_owned())),
        ]
    );
    subscriber.close().await;
    setup.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_retry_waits_in_its_paused_partition_while_later_messages_flow() {
    let Some(setup) =
        setup("a_delayed_retry_waits_in_its_paused_partition_while_later_messages_flow").await
    else {
        return;
    };
    let delay = Duration::from_secs(3);
    let mut subscriber = setup.source().subscribe(&setup.broker).await.unwrap();
    setup.publish("later-0").await;
    setup.publish("retry-me").await;
    let first = next(&mut subscriber).await;
    first.ack().await.unwrap();
    let retried = next(&mut subscriber).await;
    let nacked_at = Instant::now();
    retried.nack_after(delay).await.unwrap();
    // Published after the nack: still handled before the retry is due.
    setup.publish("later-1").await;
    let later = next(&mut subscriber).await;
    assert_eq!(later.payload(), b"later-1");
    later.ack().await.unwrap();
    let again = next(&mut subscriber).await;
    assert_eq!(again.payload(), b"retry-me");
    assert_eq!(again.redelivery_count(), Some(1));
    assert_eq!(
        again.name(),
        Some(setup.topic.as_str()),
        "named after its topic"
    );
    assert!(
        nacked_at.elapsed() >= delay - Duration::from_millis(100),
        "not before it was due"
    );
    again.ack().await.unwrap();
    subscriber.close().await;
    setup.finish().await;
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Order {
    id: u32,
}

async fn always_fails(_order: Order) -> Result<(), std::io::Error> {
    Err(std::io::Error::other("cannot take this order"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_goes_to_the_dead_letter_topic_after_max_attempts() {
    let Some(setup) =
        setup("a_poison_message_goes_to_the_dead_letter_topic_after_max_attempts").await
    else {
        return;
    };
    let dead_letters = setup.created.topic(format!("{}.dlt", setup.topic));
    let mut dead = KafkaSource::new(&dead_letters)
        .group(setup.created.group(fresh_name("dlt-reader")))
        .start_from(StartFrom::Earliest)
        .subscribe(&setup.broker)
        .await
        .unwrap();
    let service = KafkaBroker::new(support::config(&setup.servers));
    let app = App::new("dead-letters")
        .broker(
            service,
            Router::new().subscriber(
                SubscriberDef::new(setup.source(), handler_fn(always_fails))
                    .max_attempts(3)
                    .dead_letter(&dead_letters),
            ),
        )
        .start()
        .await
        .unwrap();
    setup.publish("{\"id\":7}").await;
    let poison = next(&mut dead).await;
    assert_eq!(poison.payload(), b"{\"id\":7}");
    assert_eq!(
        poison.headers().get_str("correlation-id"),
        Some("id-{\"id\":7}")
    );
    assert_eq!(
        poison
            .headers()
            .get_str(ruststream::runtime::ATTEMPT_HEADER),
        Some("3")
    );
    assert_eq!(
        poison
            .headers()
            .get_str(ruststream::runtime::ORIGINAL_NAME_HEADER),
        Some(setup.topic.as_str())
    );
    poison.ack().await.unwrap();
    app.shutdown().await.unwrap();
    dead.close().await;
    setup.finish().await;
}

#[derive(Default)]
struct Sequences {
    by_key: Mutex<HashMap<u32, Vec<u32>>>,
    handled: tokio::sync::Notify,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Keyed {
    key: u32,
    seq: u32,
}

async fn record(message: Keyed, sequences: State<Sequences>) {
    // Uneven work, so lanes finish out of order.
    let pause = u64::from((message.seq * 7 + message.key) % 4);
    tokio::time::sleep(Duration::from_millis(pause)).await;
    sequences
        .by_key
        .lock()
        .entry(message.key)
        .or_default()
        .push(message.seq);
    sequences.handled.notify_one();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_by_key_keep_each_keys_order() {
    const KEYS: u32 = 8;
    const PER_KEY: u32 = 25;
    let Some(setup) = setup("workers_by_key_keep_each_keys_order").await else {
        return;
    };
    setup
        .broker
        .create_topics(&[&setup.topic], 3)
        .await
        .unwrap();
    let sequences = Arc::new(Sequences::default());
    let service = KafkaBroker::new(support::config(&setup.servers));
    let app = App::new("keyed")
        .state_arc(Arc::clone(&sequences))
        .broker(
            service,
            Router::new().subscriber(
                SubscriberDef::new(setup.source(), handler_fn(record)).workers_by_key(4),
            ),
        )
        .start()
        .await
        .unwrap();
    for seq in 0..PER_KEY {
        for key in 0..KEYS {
            let payload = serde_json::to_vec(&Keyed { key, seq }).unwrap();
            let partition_key = format!("key-{key}");
            setup
                .broker
                .publish(
                    OutgoingMessage::new(&setup.topic, &payload).with_key(partition_key.as_bytes()),
                )
                .await
                .unwrap();
        }
    }
    let total = (KEYS * PER_KEY) as usize;
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let notified = sequences.handled.notified();
            if sequences
                .by_key
                .lock()
                .values()
                .map(Vec::len)
                .sum::<usize>()
                >= total
            {
                break;
            }
            notified.await;
        }
    })
    .await
    .expect("every keyed message is handled within 60 s");
    for (key, seqs) in sequences.by_key.lock().iter() {
        assert_eq!(
            *seqs,
            (0..PER_KEY).collect::<Vec<_>>(),
            "key {key} kept its order"
        );
    }
    app.shutdown().await.unwrap();
    setup.finish().await;
}
