//! The seed broker works through the contract's traits alone: every helper here is generic
//! over the traits, so it is the contract, not the dummy's own API, that is exercised.

use std::pin::pin;
use std::time::Duration;

use futures::StreamExt;
use ruststream::{
    BatchSubscriber, Broker, DescribeServer, Headers, IncomingMessage, OutgoingMessage, Publisher,
    RequestReply, Subscriber, SubscriptionSource, Transaction, TransactionalPublisher,
};
use ruststream_seed_broker::{
    REPLY_TO_HEADER, SeedBroker, SeedConfig, SeedError, SeedSource, Settlements,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

async fn connected() -> Result<SeedBroker, SeedError> {
    let broker = SeedBroker::new(SeedConfig::new("seed://localhost:7000"));
    broker.connect().await?;
    Ok(broker)
}

/// Opens any source on any broker.
async fn open<B: Broker, S: SubscriptionSource<B>>(
    broker: &B,
    source: S,
) -> Result<S::Subscriber, B::Error> {
    source.subscribe(broker).await
}

/// Takes the next message of any subscriber, failing after a second.
async fn next<S: Subscriber>(subscriber: &mut S) -> S::Message {
    let mut stream = pin!(subscriber.stream());
    match tokio::time::timeout(Duration::from_secs(1), stream.next()).await {
        Ok(Some(Ok(message))) => message,
        Ok(Some(Err(error))) => panic!("the stream yielded an error: {error}"),
        Ok(None) => panic!("the stream ended"),
        Err(_) => panic!("no message within 1s"),
    }
}

/// Whether any subscriber stays silent for 50 ms.
async fn is_silent<S: Subscriber>(subscriber: &mut S) -> bool {
    let mut stream = pin!(subscriber.stream());
    tokio::time::timeout(Duration::from_millis(50), stream.next())
        .await
        .is_err()
}

/// Publishes on any publisher.
async fn send<P: Publisher>(publisher: &P, name: &str, payload: &[u8]) -> Result<(), P::Error> {
    publisher.publish(OutgoingMessage::new(name, payload)).await
}

#[tokio::test]
async fn round_trip_keeps_payload_and_headers() -> TestResult {
    let broker = connected().await?;
    let mut subscriber = open(&broker, "orders").await?;
    let headers: Headers = [("a", &b"1"[..]), ("bin", &[0, 0xff][..])]
        .into_iter()
        .collect();
    let payload = [0u8, 1, 2, 0xfe, 0xff];
    broker
        .publish(OutgoingMessage::new("orders", &payload).with_headers(&headers))
        .await?;

    let message = next(&mut subscriber).await;
    assert_eq!(message.payload(), payload);
    assert_eq!(message.headers(), &headers);
    // Only the required methods are implemented: the defaults answer.
    assert_eq!(message.partition_key(), None);
    assert_eq!(message.name(), None);
    assert_eq!(message.redelivery_count(), None);
    message.ack().await?;
    assert_eq!(
        broker.settlements(),
        Settlements {
            acked: 1,
            ..Settlements::default()
        }
    );
    Ok(())
}

#[tokio::test]
async fn names_are_isolated() -> TestResult {
    let broker = connected().await?;
    let mut orders = open(&broker, String::from("orders")).await?;
    send(&broker, "invoices", b"x").await?;
    assert!(is_silent(&mut orders).await);
    Ok(())
}

#[tokio::test]
async fn nack_requeues_or_drops_and_nack_after_defaults_to_requeue() -> TestResult {
    let broker = connected().await?;
    let mut subscriber = open(&broker, "jobs").await?;
    send(&broker, "jobs", b"once").await?;

    next(&mut subscriber).await.nack(true).await?;
    next(&mut subscriber)
        .await
        .nack_after(Duration::from_secs(3600))
        .await?;
    // The default nack_after is an immediate nack(true): the message is back at once.
    let again = next(&mut subscriber).await;
    assert_eq!(again.payload(), b"once");
    again.nack(false).await?;
    assert!(is_silent(&mut subscriber).await);
    assert_eq!(
        broker.settlements(),
        Settlements {
            acked: 0,
            requeued: 2,
            dropped: 1
        }
    );
    Ok(())
}

#[tokio::test]
async fn a_descriptor_with_a_group_shares_and_plain_subscribers_fan_out() -> TestResult {
    let broker = connected().await?;
    let mut first = open(&broker, SeedSource::new("tasks").group("workers")).await?;
    let mut second = open(&broker, SeedSource::new("tasks").group("workers")).await?;
    let mut watcher = open(&broker, SeedSource::new("tasks")).await?;
    for payload in [b"1", b"2", b"3", b"4"] {
        send(&broker, "tasks", payload).await?;
    }
    for subscriber in [&mut first, &mut second] {
        for _ in 0..2 {
            next(subscriber).await.ack().await?;
        }
        assert!(is_silent(subscriber).await);
    }
    for expected in [b"1", b"2", b"3", b"4"] {
        assert_eq!(next(&mut watcher).await.payload(), expected);
    }
    assert_eq!(
        SubscriptionSource::<SeedBroker>::name(&SeedSource::new("tasks")),
        "tasks"
    );
    Ok(())
}

#[tokio::test]
async fn batches_hold_what_is_ready() -> TestResult {
    let broker = connected().await?;
    let mut subscriber = open(&broker, "bulk").await?;
    for payload in [b"a", b"b", b"c"] {
        send(&broker, "bulk", payload).await?;
    }
    let batch = {
        let mut batches = pin!(subscriber.batches(2, Duration::from_millis(10)));
        let first = batches.next().await.expect("a batch")?;
        let second = batches.next().await.expect("a batch")?;
        assert_eq!(first.len(), 2);
        assert_eq!(second.len(), 1);
        first.into_iter().chain(second).collect::<Vec<_>>()
    };
    for message in batch {
        message.ack().await?;
    }
    assert_eq!(broker.settlements().acked, 3);
    Ok(())
}

#[tokio::test]
async fn a_transaction_publishes_on_commit_only() -> TestResult {
    let broker = connected().await?;
    let mut subscriber = open(&broker, "ledger").await?;

    let mut aborted = broker.begin().await?;
    aborted
        .publish(OutgoingMessage::new("ledger", b"never"))
        .await?;
    aborted.abort().await?;

    let mut committed = broker.begin().await?;
    committed
        .publish(OutgoingMessage::new("ledger", b"1"))
        .await?;
    committed
        .publish(OutgoingMessage::new("ledger", b"2"))
        .await?;
    assert!(is_silent(&mut subscriber).await);
    committed.commit().await?;

    assert_eq!(next(&mut subscriber).await.payload(), b"1");
    assert_eq!(next(&mut subscriber).await.payload(), b"2");
    assert!(is_silent(&mut subscriber).await);
    Ok(())
}

#[tokio::test]
async fn request_reply_answers_and_reports_no_responders() -> TestResult {
    let broker = connected().await?;
    let err = broker
        .request(
            OutgoingMessage::new("echo", b"?"),
            Duration::from_millis(50),
        )
        .await
        .expect_err("nobody listens");
    assert!(matches!(err, SeedError::NoResponders(ref name) if name == "echo"));

    let mut service = open(&broker, "echo").await?;
    let responder = broker.clone();
    let task = tokio::spawn(async move {
        let request = next(&mut service).await;
        let inbox = request
            .headers()
            .get_str(REPLY_TO_HEADER)
            .expect("a reply address")
            .to_owned();
        let mut answer = request.payload().to_vec();
        answer.extend_from_slice(b"!");
        responder
            .publish(OutgoingMessage::new(&inbox, &answer))
            .await
            .expect("reply published");
        request.ack().await.expect("acked");
    });
    let reply = broker
        .request(
            OutgoingMessage::new("echo", b"hello"),
            Duration::from_secs(1),
        )
        .await?;
    assert_eq!(&reply.payload[..], b"hello!");
    task.await?;
    Ok(())
}

#[tokio::test]
async fn shutdown_ends_streams_and_refuses_publishes() -> TestResult {
    let broker = connected().await?;
    let mut subscriber = open(&broker, "orders").await?;
    send(&broker, "orders", b"last").await?;
    broker.shutdown().await?;

    // What was delivered before the shutdown is still read, then the stream ends.
    let mut stream = pin!(subscriber.stream());
    assert!(stream.next().await.is_some());
    assert!(stream.next().await.is_none());
    let err = send(&broker, "orders", b"late")
        .await
        .expect_err("closed broker");
    assert!(matches!(err, SeedError::Closed), "{err}");
    Ok(())
}

#[tokio::test]
async fn config_is_required_and_checked() {
    let broker = SeedBroker::new(SeedConfig::new("http://user:pw@somewhere").with_client_name("t"));
    let err = broker.connect().await.expect_err("not a seed URL");
    // The error enum is #[non_exhaustive]: matching it needs a wildcard arm.
    match &err {
        SeedError::InvalidUrl(url) => assert!(!url.contains("pw"), "{url}"),
        other => panic!("unexpected error: {other}"),
    }
    let unconnected = SeedBroker::new(SeedConfig::new("seed://h"));
    let err = send(&unconnected, "x", b"")
        .await
        .expect_err("not connected");
    assert!(err.to_string().contains("connect()"), "{err}");
}

#[test]
fn describe_server_keeps_credentials_out() {
    let broker = SeedBroker::new(SeedConfig::new("seed://alice:s3cret@broker:7000/tenant"));
    let spec = broker.describe_server();
    assert_eq!(spec.protocol, "seed");
    assert_eq!(spec.host, "broker:7000");
    assert_eq!(spec.pathname.as_deref(), Some("/tenant"));
    assert!(!format!("{spec:?}").contains("s3cret"));
}
