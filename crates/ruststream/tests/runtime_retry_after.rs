//! Delayed retries: `retry_after` uses the broker's native delayed redelivery where it has
//! one (`nack_after` on the memory broker); elsewhere the runtime publishes a delayed copy
//! carrying the attempt number and due time *before* it acks the original, so a crash
//! during the delay loses nothing.
#![cfg(feature = "testing")]

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ruststream::matching::DotSubjects;
use ruststream::memory::MemoryBroker;
use ruststream::runtime::{
    ATTEMPT_HEADER, App, HandlerResult, NOT_BEFORE_HEADER, RETRY_FOR_HEADER, Router, Settlement,
    SubscriberDef, handler_fn,
};
use ruststream::testing::{TestApp, TestClient};
use serde::{Deserialize, Serialize};
use support::{Log, Spy, inspect};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Job {
    id: u64,
}

const DELAY: Duration = Duration::from_millis(20);

fn unix_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// Asks for a delayed retry on the first attempt; on later attempts, records (in the log)
/// whether the copy's due time had passed, and acks.
fn retry_once_after_delay(log: &Log) -> impl ruststream::runtime::Handler {
    let log = log.clone();
    inspect(move |message| {
        if message.attempt() == 1 {
            return HandlerResult::RetryAfter(DELAY);
        }
        if let Some(not_before) = message.headers().get_str(NOT_BEFORE_HEADER) {
            let not_before: u128 = not_before.parse().unwrap();
            log.push(format!(
                "handled attempt {} {} its due time",
                message.attempt(),
                if unix_millis() >= not_before {
                    "after"
                } else {
                    "BEFORE"
                }
            ));
        }
        HandlerResult::Ack
    })
}

#[tokio::test]
async fn retry_after_on_the_memory_broker_uses_its_native_delayed_redelivery() {
    let log = Log::default();
    let broker = Spy::new("memory", MemoryBroker::new(), &log);
    let router = Router::new()
        .subscriber(SubscriberDef::new("jobs", retry_once_after_delay(&log)).name("work"));
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
    assert_eq!(second.header(ATTEMPT_HEADER), None, "not a copy");
    assert!(app.published("jobs").is_empty(), "no copy was published");
    assert!(
        log.lines()
            .contains(&"nack-after-20ms memory jobs".to_owned()),
        "{:#?}",
        log.lines()
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn retry_after_on_a_test_client_publishes_a_delayed_copy_before_acking_the_original() {
    let log = Log::default();
    let broker = Spy::new("client", TestClient::new(DotSubjects), &log);
    let router = Router::new()
        .subscriber(SubscriberDef::new("jobs", retry_once_after_delay(&log)).name("work"));
    let app = TestApp::start(App::new("delays").broker(broker.clone(), router), broker)
        .await
        .unwrap();
    let published_at = unix_millis();
    app.publish("jobs", &Job { id: 1 }).await.unwrap();

    assert_eq!(
        app.settlements("work"),
        [
            Settlement::Retried { delay: Some(DELAY) },
            Settlement::Acked
        ]
    );
    let copy = &app.received("work")[1];
    assert_eq!(copy.attempt, 2);
    assert_eq!(copy.header(ATTEMPT_HEADER), Some("2"));
    assert_eq!(copy.header(RETRY_FOR_HEADER), Some("work"));
    let not_before: u128 = copy.header(NOT_BEFORE_HEADER).unwrap().parse().unwrap();
    assert!(
        not_before >= published_at + DELAY.as_millis(),
        "due after the delay"
    );
    assert_eq!(copy.decoded::<Job>(), Job { id: 1 });

    let copy_published = log.position(&["publish client jobs attempt=2 retry_for=work"]);
    let original_acked = log.position(&["ack client jobs"]);
    assert!(
        copy_published < original_acked,
        "the delayed copy is published before the original is acked: {:#?}",
        log.lines()
    );
    assert!(
        log.lines()
            .contains(&"handled attempt 2 after its due time".to_owned()),
        "the copy waits for its due time: {:#?}",
        log.lines()
    );
    assert!(
        log.starting_with("nack").is_empty(),
        "nothing is nacked on a broker that cannot redeliver: {:#?}",
        log.lines()
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_retry_copy_meant_for_another_handler_is_skipped_and_acked() {
    let log = Log::default();
    let broker = Spy::new("client", TestClient::new(DotSubjects), &log);
    // Two handlers on the same name: `work` retries, `audit` only reads.
    let router = Router::new()
        .subscriber(SubscriberDef::new("jobs", retry_once_after_delay(&log)).name("work"))
        .subscriber(SubscriberDef::new("jobs", handler_fn(|_: Job| async {})).name("audit"));
    let app = TestApp::start(App::new("fan-out").broker(broker.clone(), router), broker)
        .await
        .unwrap();
    app.publish("jobs", &Job { id: 5 }).await.unwrap();

    let work: Vec<u32> = app.received("work").iter().map(|r| r.attempt).collect();
    assert_eq!(work, [1, 2]);
    let audit = app.received("audit");
    assert_eq!(audit.len(), 1, "audit handles the job once: {audit:?}");
    assert_eq!(
        app.settlements("audit"),
        [Settlement::Acked, Settlement::Skipped],
        "the copy for `work` is skipped by `audit`"
    );
    let acked_copies = log
        .starting_with("ack client jobs attempt=2 retry_for=work")
        .len();
    assert_eq!(
        acked_copies,
        2,
        "the copy is acked by both: handled by `work`, skipped by `audit`: {:#?}",
        log.lines()
    );
    app.shutdown().await.unwrap();
}
