//! Settlement: the runtime acks after the handler returns, and a handler's return value
//! says how its message is settled (`Settle`, `Result`).
#![cfg(feature = "testing")]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ruststream::matching::DotSubjects;
use ruststream::memory::MemoryBroker;
use ruststream::runtime::{
    ATTEMPT_HEADER, App, FailurePolicy, IntoSubscriber, Router, Settle, Settlement, State,
    SubscriberDef, handler_fn,
};
use ruststream::testing::{Ended, TestApp, TestBroker, TestClient};
use serde::{Deserialize, Serialize};
use support::{Gate, Log, Spy, eventually, inspect};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Job {
    id: u64,
}

fn app_with<B: TestBroker>(broker: &B, subscriber: impl IntoSubscriber<B>) -> App {
    App::new("settlement").broker(broker.clone(), Router::new().subscriber(subscriber))
}

#[tokio::test]
async fn a_message_is_acked_only_after_its_handler_returns() {
    let log = Log::default();
    let broker = Spy::new("memory", MemoryBroker::new(), &log);
    let gate = Gate::default();
    let handler_log = log.clone();
    let handler_gate = gate.clone();
    let slow = SubscriberDef::new(
        "jobs",
        handler_fn(move |job: Job| {
            let (log, gate) = (handler_log.clone(), handler_gate.clone());
            async move {
                gate.pass().await;
                log.push(format!("handler returned for job {}", job.id));
            }
        }),
    )
    .name("slow");
    let app = TestApp::start(app_with(&broker, slow), broker.clone())
        .await
        .unwrap();

    app.producer()
        .publish("jobs", &Job { id: 1 })
        .await
        .unwrap();
    eventually("the handler to receive the job", || {
        app.received("slow").len() == 1
    })
    .await;
    let running = &app.received("slow")[0];
    assert_eq!(running.ended, None, "the handler is still running");
    assert_eq!(running.settlement, None, "nothing is settled while it runs");
    assert!(log.starting_with("ack").is_empty(), "{:#?}", log.lines());

    gate.open(1);
    app.settled().await.unwrap();
    let done = &app.received("slow")[0];
    assert_eq!(done.ended, Some(Ended::Completed));
    assert_eq!(done.settlement, Some(Settlement::Acked));
    assert!(
        log.position(&["handler returned for job 1"]) < log.position(&["ack memory jobs"]),
        "the ack comes after the handler returns: {:#?}",
        log.lines()
    );
    app.shutdown().await.unwrap();
}

/// A handler that asks for a retry on its first attempt and acks the second, on any broker.
async fn retry_then_ack<B: TestBroker>(broker: B) -> TestApp<B> {
    let jobs = SubscriberDef::new(
        "jobs",
        inspect(|message| {
            if message.attempt() == 1 {
                Settle::Retry
            } else {
                Settle::Ack
            }
        }),
    )
    .name("work");
    let app = TestApp::start(app_with(&broker, jobs), broker)
        .await
        .unwrap();
    app.publish("jobs", &Job { id: 7 }).await.unwrap();
    let attempts: Vec<u32> = app.received("work").iter().map(|r| r.attempt).collect();
    assert_eq!(attempts, [1, 2], "retried once, then acked");
    assert_eq!(
        app.settlements("work"),
        [Settlement::Retried { delay: None }, Settlement::Acked]
    );
    assert_eq!(app.received("work")[1].decoded::<Job>(), Job { id: 7 });
    app
}

#[tokio::test]
async fn handler_result_retry_redelivers_the_message_on_the_memory_broker() {
    let app = retry_then_ack(MemoryBroker::new()).await;
    let second = &app.received("work")[1];
    assert_eq!(
        second.redelivery_count,
        Some(1),
        "the broker redelivered it"
    );
    assert_eq!(second.header(ATTEMPT_HEADER), None, "no copy was published");
    assert!(app.published("jobs").is_empty());
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn handler_result_retry_on_a_broker_that_cannot_redeliver_publishes_nothing() {
    let client = TestClient::new(DotSubjects);
    let jobs = SubscriberDef::new("jobs", inspect(|_| Settle::Retry)).name("work");
    let app = TestApp::start(app_with(&client, jobs), client)
        .await
        .unwrap();
    app.publish("jobs", &Job { id: 7 }).await.unwrap();
    assert_eq!(
        app.settlements("work"),
        [Settlement::RetryUnsupported { delay: None }]
    );
    assert_eq!(app.received("work").len(), 1);
    assert!(app.published("jobs").is_empty(), "no copy is published");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn handler_result_drop_rejects_the_message_for_good() {
    let broker = MemoryBroker::new();
    let jobs = SubscriberDef::new("jobs", handler_fn(|_: Job| async { Settle::Drop })).name("work");
    let app = TestApp::start(app_with(&broker, jobs), broker.clone())
        .await
        .unwrap();
    app.publish("jobs", &Job { id: 1 }).await.unwrap();
    assert_eq!(app.settlements("work"), [Settlement::Rejected]);
    assert_eq!(app.received("work").len(), 1, "not redelivered");
    assert_eq!(broker.backlog(), 0);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn handler_result_ack_and_unit_both_ack() {
    let broker = MemoryBroker::new();
    let router = Router::new()
        .subscriber(SubscriberDef::new("a", handler_fn(|_: Job| async { Settle::Ack })).name("a"))
        .subscriber(SubscriberDef::new("b", handler_fn(|_: Job| async {})).name("b"));
    let app = TestApp::start(App::new("acks").broker(broker.clone(), router), broker)
        .await
        .unwrap();
    app.publish("a", &Job { id: 1 }).await.unwrap();
    app.publish("b", &Job { id: 2 }).await.unwrap();
    assert_eq!(app.settlements("a"), [Settlement::Acked]);
    assert_eq!(app.settlements("b"), [Settlement::Acked]);
    app.shutdown().await.unwrap();
}

#[derive(Default)]
struct Calls {
    count: AtomicU32,
}

/// A handler that fails on its first call and succeeds after.
fn fails_once() -> impl ruststream::runtime::Handler {
    handler_fn(|job: Job, calls: State<Calls>| async move {
        if calls.count.fetch_add(1, Ordering::SeqCst) == 0 {
            Err(format!("job {} failed once", job.id))
        } else {
            Ok(())
        }
    })
}

async fn run_failing_once(
    policy: Option<FailurePolicy>,
    dead_letter: bool,
) -> TestApp<MemoryBroker> {
    let broker = MemoryBroker::new();
    let mut jobs = SubscriberDef::new("jobs", fails_once()).name("work");
    if let Some(policy) = policy {
        jobs = jobs.on_error(policy);
    }
    if dead_letter {
        jobs = jobs.dead_letter("jobs.dead");
    }
    let app = App::new("errors")
        .state_arc(Arc::new(Calls::default()))
        .broker(broker.clone(), Router::new().subscriber(jobs));
    let app = TestApp::start(app, broker).await.unwrap();
    app.publish("jobs", &Job { id: 3 }).await.unwrap();
    assert_eq!(
        app.received("work")[0].ended,
        Some(Ended::Failed("job 3 failed once".into()))
    );
    app
}

#[tokio::test]
async fn an_err_follows_the_on_error_policy_drop() {
    let app = run_failing_once(Some(FailurePolicy::Drop), false).await;
    assert_eq!(app.settlements("work"), [Settlement::Rejected]);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_err_follows_the_on_error_policy_retry() {
    let app = run_failing_once(Some(FailurePolicy::Retry), false).await;
    assert_eq!(
        app.settlements("work"),
        [Settlement::Retried { delay: None }, Settlement::Acked]
    );
    assert_eq!(app.received("work")[1].ended, Some(Ended::Completed));
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_err_follows_the_on_error_policy_dead_letter() {
    let app = run_failing_once(Some(FailurePolicy::DeadLetter), true).await;
    assert_eq!(app.settlements("work"), [Settlement::DeadLettered]);
    let dead = app.published("jobs.dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].decoded::<Job>(), Job { id: 3 });
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_err_is_retried_with_backoff_by_default() {
    let app = run_failing_once(None, false).await;
    let settlements = app.settlements("work");
    let Settlement::Retried { delay: Some(delay) } = settlements[0] else {
        panic!("the default error policy retries after a delay: {settlements:?}");
    };
    // The default backoff starts at 100 ms, spread by ±20 %.
    assert!(
        (Duration::from_millis(80)..=Duration::from_millis(120)).contains(&delay),
        "{delay:?}"
    );
    assert_eq!(settlements[1], Settlement::Acked);
    app.shutdown().await.unwrap();
}
