//! Delayed retries are the broker's: `Settle::RetryAfter(d)` reaches the message's
//! `nack_after(d)`, the runtime publishes no copy and no worker waits. A subscription that
//! cannot redeliver reports the retry as unsupported; `FailurePolicy::RetryInPlace` calls
//! the handler again in the same worker, on any broker.
#![cfg(feature = "testing")]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ruststream::matching::DotSubjects;
use ruststream::memory::MemoryBroker;
use ruststream::runtime::{
    App, Backoff, FailurePolicy, Router, Settle, Settlement, SubscriberDef, handler_fn,
};
use ruststream::testing::{TestApp, TestClient};
use serde::{Deserialize, Serialize};
use support::{Log, Spy, inspect};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Job {
    id: u64,
}

const DELAY: Duration = Duration::from_millis(20);

/// Asks for a delayed retry on the first attempt, acks later ones.
fn retry_once_after_delay() -> impl ruststream::runtime::Handler {
    inspect(|message| {
        if message.attempt() == 1 {
            Settle::RetryAfter(DELAY)
        } else {
            Settle::Ack
        }
    })
}

#[tokio::test]
async fn retry_after_reaches_the_brokers_nack_after() {
    let log = Log::default();
    let broker = Spy::new("memory", MemoryBroker::new(), &log);
    let router =
        Router::new().subscriber(SubscriberDef::new("jobs", retry_once_after_delay()).name("work"));
    let app = TestApp::start(App::new("delays").broker(broker.clone(), router), broker)
        .await
        .unwrap();
    app.publish("jobs", &Job { id: 1 }).await.unwrap();

    assert_eq!(
        app.settlements("work"),
        [
            Settlement::Retried { delay: Some(DELAY) },
            Settlement::Acked
        ]
    );
    let second = &app.received("work")[1];
    assert_eq!(second.attempt, 2);
    assert_eq!(
        second.redelivery_count,
        Some(1),
        "the broker redelivered it"
    );
    assert!(app.published("jobs").is_empty(), "no copy was published");
    let lines = log.lines();
    assert!(
        lines.contains(&"nack-after-20ms memory jobs".to_owned()),
        "{lines:#?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|line| line.starts_with("publish"))
            .count(),
        1,
        "the test's publish, and nothing from the runtime: {lines:#?}"
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_retry_on_a_subscription_that_cannot_redeliver_is_reported_as_unsupported() {
    let log = Log::default();
    let broker = Spy::new("client", TestClient::new(DotSubjects), &log);
    let router =
        Router::new().subscriber(SubscriberDef::new("jobs", retry_once_after_delay()).name("work"));
    let app = TestApp::start(App::new("delays").broker(broker.clone(), router), broker)
        .await
        .unwrap();
    app.publish("jobs", &Job { id: 1 }).await.unwrap();

    assert_eq!(
        app.settlements("work"),
        [Settlement::RetryUnsupported { delay: Some(DELAY) }],
        "one delivery, and no retry reported as if it would happen"
    );
    assert_eq!(app.received("work").len(), 1);
    let lines = log.lines();
    assert!(
        lines.contains(&"nack-after-20ms client jobs".to_owned()),
        "the broker was still asked: {lines:#?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|line| line.starts_with("publish"))
            .count(),
        1,
        "the test's publish, and no hidden copy: {lines:#?}"
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn retry_in_place_calls_the_handler_again_in_the_same_worker() {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&calls);
    let handler = handler_fn(move |_: Job| {
        let call = counted.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if call < 3 {
                Err(std::io::Error::other(format!("call {call} fails")))
            } else {
                Ok(())
            }
        }
    });
    let in_place = FailurePolicy::RetryInPlace {
        attempts: 3,
        backoff: Backoff::exponential(Duration::from_millis(1), Duration::from_millis(5)),
    };
    let client = TestClient::new(DotSubjects);
    let router = Router::new().subscriber(
        SubscriberDef::new("jobs", handler)
            .name("work")
            .on_error(in_place),
    );
    let app = TestApp::start(App::new("in-place").broker(client.clone(), router), client)
        .await
        .unwrap();
    app.publish("jobs", &Job { id: 1 }).await.unwrap();

    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "two failures, then success"
    );
    assert_eq!(app.received("work").len(), 1, "one delivery");
    assert_eq!(app.settlements("work"), [Settlement::Acked]);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn retry_in_place_dead_letters_once_every_call_failed() {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&calls);
    let handler = handler_fn(move |_: Job| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Err::<(), _>(std::io::Error::other("always fails")) }
    });
    let client = TestClient::new(DotSubjects);
    let router = Router::new().subscriber(
        SubscriberDef::new("jobs", handler)
            .name("work")
            .on_error(FailurePolicy::RetryInPlace {
                attempts: 2,
                backoff: Backoff::exponential(Duration::from_millis(1), Duration::from_millis(1)),
            })
            .dead_letter("jobs.dead"),
    );
    let app = TestApp::start(App::new("in-place").broker(client.clone(), router), client)
        .await
        .unwrap();
    app.publish("jobs", &Job { id: 7 }).await.unwrap();

    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(app.settlements("work"), [Settlement::DeadLettered]);
    let dead = app.published("jobs.dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].decoded::<Job>(), Job { id: 7 });
    app.shutdown().await.unwrap();
}
