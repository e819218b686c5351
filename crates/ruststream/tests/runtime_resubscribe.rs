//! Resubscription: when a subscription's stream ends unexpectedly (the broker connection
//! closed under the app), the runtime says so in the log and subscribes again with a
//! growing backoff, never spinning, until the broker is back; then handling resumes and
//! nothing published meanwhile to a consumer group is lost.
#![cfg(feature = "testing")]

mod support;

use std::time::Duration;

use ruststream::memory::{MemoryBroker, MemorySource};
use ruststream::runtime::{App, Router, Settlement, SubscriberDef, handler_fn};
use ruststream::testing::TestApp;
use ruststream::{Broker, Publisher};
use serde::{Deserialize, Serialize};
use support::{Log, LogCapture, Spy, Via, eventually};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Job {
    id: u64,
}

/// How long the test watches the retries. The runtime waits about 100 ms, then 200 ms,
/// 400 ms... (±20 %) between attempts, so a few attempts fit in it; a spinning loop would
/// make thousands.
const WINDOW: Duration = Duration::from_millis(400);

// Current-thread: the log capture sees the events of the app's tasks on this thread.
#[tokio::test(flavor = "current_thread")]
async fn a_subscription_that_ends_unexpectedly_is_resubscribed_with_backoff() {
    let capture = LogCapture::default();
    let _guard = capture.install();
    let log = Log::default();
    let broker = Spy::new("memory", MemoryBroker::new(), &log);
    let jobs = SubscriberDef::new(
        Via(MemorySource::new("jobs").group("workers")),
        handler_fn(|_: Job| async {}),
    )
    .name("work");
    // The test publishes on its own connection to the same server, which stays up.
    let publisher = broker.inner.new_connection();
    let app = App::new("resubscribe").broker(broker.clone(), Router::new().subscriber(jobs));
    let app = TestApp::start(app, publisher.clone()).await.unwrap();
    app.publish("jobs", &Job { id: 1 }).await.unwrap();
    assert_eq!(broker.subscribes(), 1);

    // The app's connection closes under it: its subscription stream ends.
    broker.inner.shutdown().await.unwrap();
    eventually("the runtime to notice", || {
        capture.count("the subscription ended unexpectedly") == 1
    })
    .await;
    eventually("a first attempt to subscribe again", || {
        broker.subscribes() == 2
    })
    .await;
    tokio::time::sleep(WINDOW).await;
    let retries = broker.subscribes() - 1;
    assert!(
        (1..=3).contains(&retries),
        "a few attempts with a growing backoff in {WINDOW:?}, not a spin: {retries}"
    );
    assert!(
        capture.count("subscribing failed; trying again") >= 1,
        "{:#?}",
        capture.lines()
    );

    // Published while the app is disconnected: the group keeps it.
    publisher
        .publish(ruststream::OutgoingMessage::new("jobs", br#"{"id":2}"#))
        .await
        .unwrap();
    broker.inner.connect().await.unwrap();
    app.settled().await.unwrap();
    assert_eq!(capture.count("resubscribed"), 1, "{:#?}", capture.lines());
    let ids: Vec<u64> = app
        .received("work")
        .iter()
        .map(|r| r.decoded::<Job>().id)
        .collect();
    assert_eq!(ids, [1, 2], "handling resumed and nothing was lost");
    assert!(
        app.settlements("work")
            .iter()
            .all(|s| *s == Settlement::Acked)
    );
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn every_subscriber_of_a_closed_connection_resubscribes_on_its_own() {
    let capture = LogCapture::default();
    let _guard = capture.install();
    let log = Log::default();
    let broker = Spy::new("memory", MemoryBroker::new(), &log);
    let router = Router::new()
        .subscriber(
            SubscriberDef::new(
                Via(MemorySource::new("a").group("g")),
                handler_fn(|_: Job| async {}),
            )
            .name("a"),
        )
        .subscriber(
            SubscriberDef::new(
                Via(MemorySource::new("b").group("g")),
                handler_fn(|_: Job| async {}),
            )
            .name("b")
            .workers(3),
        );
    let publisher = broker.inner.new_connection();
    let app = App::new("resubscribe").broker(broker.clone(), router);
    let app = TestApp::start(app, publisher.clone()).await.unwrap();

    broker.inner.shutdown().await.unwrap();
    eventually("both subscriptions to notice", || {
        capture.count("the subscription ended unexpectedly") == 2
    })
    .await;
    broker.inner.connect().await.unwrap();
    eventually("both to subscribe again", || {
        capture.count("resubscribed") == 2
    })
    .await;
    app.publish("a", &Job { id: 1 }).await.unwrap();
    app.publish("b", &Job { id: 2 }).await.unwrap();
    assert_eq!(app.settlements("a"), [Settlement::Acked]);
    assert_eq!(app.settlements("b"), [Settlement::Acked]);
    app.shutdown().await.unwrap();
}
