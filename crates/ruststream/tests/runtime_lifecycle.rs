//! Lifecycle: lifespan hooks in order, a failing start aborts cleanly, brokers close in
//! reverse order, and a graceful shutdown lets in-flight handlers finish, loses nothing,
//! and leaves what it had to cancel unsettled for the next instance of the service.
#![cfg(feature = "testing")]

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ruststream::memory::{MemoryBroker, MemorySource};
use ruststream::runtime::{App, AppError, Router, Settlement, State, SubscriberDef, handler_fn};
use ruststream::testing::{TestApp, TestBroker};
use ruststream::{BoxError, Publisher};
use serde::{Deserialize, Serialize};
use support::{Gate, Log, Spy, eventually};
use tokio::sync::Notify;

#[derive(Debug, Serialize, Deserialize, PartialEq, Clone, Copy)]
struct Job {
    id: u64,
}

fn noop() -> impl ruststream::runtime::Handler {
    handler_fn(|_: Job| async {})
}

/// A hook that logs `line`.
fn logs(
    log: &Log,
    line: &'static str,
) -> impl FnOnce() -> std::future::Ready<Result<(), BoxError>> + use<> {
    let log = log.clone();
    move || {
        log.push(line);
        std::future::ready(Ok(()))
    }
}

fn lifecycle_lines(log: &Log) -> Vec<String> {
    log.lines()
        .into_iter()
        .filter(|line| {
            line.starts_with("hook") || line.starts_with("connect") || line.starts_with("shutdown")
        })
        .collect()
}

#[tokio::test]
async fn lifespan_hooks_run_in_order_and_brokers_close_in_reverse_order() {
    let log = Log::default();
    let first = Spy::new("first", MemoryBroker::new(), &log);
    let second = Spy::new("second", MemoryBroker::new(), &log);
    let app = App::new("hooks")
        .on_startup(logs(&log, "hook on_startup"))
        .after_startup(logs(&log, "hook after_startup"))
        .on_shutdown(logs(&log, "hook on_shutdown"))
        .after_shutdown(logs(&log, "hook after_shutdown"))
        .broker(
            first.clone(),
            Router::new().subscriber(SubscriberDef::new("a", noop())),
        )
        .broker(
            second.clone(),
            Router::new().subscriber(SubscriberDef::new("b", noop())),
        );
    // The test publishes on the unwrapped broker, so only the app's calls are logged.
    let app = TestApp::start(app, first.inner).await.unwrap();
    app.publish("a", &Job { id: 1 }).await.unwrap();
    app.shutdown().await.unwrap();
    assert_eq!(
        lifecycle_lines(&log),
        [
            "hook on_startup",
            "connect first",
            "connect second",
            "hook after_startup",
            "hook on_shutdown",
            "shutdown second",
            "shutdown first",
            "hook after_shutdown",
        ]
    );
}

#[tokio::test]
async fn a_failing_startup_hook_aborts_the_start_before_any_broker_connects() {
    let log = Log::default();
    let broker = Spy::new("broker", MemoryBroker::new(), &log);
    let app = App::new("fails")
        .on_startup(|| async { Err::<(), _>("the database is unreachable") })
        .after_startup(logs(&log, "hook after_startup"))
        .broker(
            broker.clone(),
            Router::new().subscriber(SubscriberDef::new("a", noop())),
        );
    let error = TestApp::start(app, broker.clone()).await.unwrap_err();
    assert!(
        matches!(&error, AppError::Hook { phase: "on_startup", source } if source.to_string() == "the database is unreachable"),
        "{error:?}"
    );
    assert!(lifecycle_lines(&log).is_empty(), "{:#?}", log.lines());
    assert!(
        broker
            .inner
            .publish(ruststream::OutgoingMessage::new("a", b"{}"))
            .await
            .is_err(),
        "the broker was never connected"
    );
}

#[tokio::test]
async fn a_broker_that_does_not_connect_aborts_the_start_and_closes_the_connected_ones() {
    let log = Log::default();
    let first = Spy::new("first", MemoryBroker::new(), &log);
    let second = Spy::new("second", MemoryBroker::new(), &log).refusing_connect();
    let app = App::new("refused")
        .after_startup(logs(&log, "hook after_startup"))
        .broker(
            first.clone(),
            Router::new().subscriber(SubscriberDef::new("a", noop())),
        )
        .broker(
            second,
            Router::new().subscriber(SubscriberDef::new("b", noop())),
        );
    let error = TestApp::start(app, first).await.unwrap_err();
    assert!(matches!(error, AppError::Connect { .. }), "{error:?}");
    assert_eq!(
        lifecycle_lines(&log),
        ["connect first", "connect second refused", "shutdown first"]
    );
}

#[tokio::test]
async fn a_failing_after_startup_hook_stops_what_was_started() {
    let log = Log::default();
    let broker = Spy::new("broker", MemoryBroker::new(), &log);
    let app = App::new("fails late")
        .after_startup(|| async { Err::<(), _>("warm-up failed") })
        .broker(
            broker.clone(),
            Router::new().subscriber(SubscriberDef::new("a", noop())),
        );
    let error = TestApp::start(app, broker.clone()).await.unwrap_err();
    assert!(
        matches!(
            error,
            AppError::Hook {
                phase: "after_startup",
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        lifecycle_lines(&log),
        ["connect broker", "shutdown broker"],
        "the broker is closed again"
    );
}

#[tokio::test]
async fn a_failing_shutdown_hook_still_stops_intake_and_closes_the_brokers() {
    let log = Log::default();
    let broker = Spy::new("broker", MemoryBroker::new(), &log);
    let app = App::new("hook fails on the way out")
        .on_shutdown(|| async { Err::<(), _>("flush failed") })
        .after_shutdown(logs(&log, "hook after_shutdown"))
        .broker(
            broker.clone(),
            Router::new().subscriber(SubscriberDef::new("a", noop())),
        );
    let app = TestApp::start(app, broker.inner).await.unwrap();
    let error = app.shutdown().await.unwrap_err();
    assert!(
        matches!(
            error,
            AppError::Hook {
                phase: "on_shutdown",
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(lifecycle_lines(&log), ["connect broker", "shutdown broker"]);
}

/// Waits at the gate before finishing.
fn waits_at_the_gate() -> impl ruststream::runtime::Handler {
    handler_fn(|_: Job, gate: State<Gate>| async move { gate.pass().await })
}

#[tokio::test]
async fn a_graceful_shutdown_lets_in_flight_handlers_finish() {
    let broker = MemoryBroker::new();
    let gate = Gate::default();
    let began = Arc::new(Notify::new());
    let notify = Arc::clone(&began);
    let app = App::new("graceful")
        .state(gate.clone())
        .on_shutdown(move || async move {
            notify.notify_one();
            Ok::<_, BoxError>(())
        })
        .broker(
            broker.clone(),
            Router::new().subscriber(
                SubscriberDef::new("jobs", waits_at_the_gate())
                    .name("slow")
                    .workers(2),
            ),
        );
    let app = TestApp::start(app, broker).await.unwrap();
    for id in 0..2 {
        app.producer().publish("jobs", &Job { id }).await.unwrap();
    }
    eventually("both handlers to run", || app.received("slow").len() == 2).await;

    let recording = app.recording();
    let (stopped, ()) = tokio::join!(app.shutdown(), async {
        began.notified().await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            recording.settlements("slow").is_empty(),
            "the handlers are still running while the shutdown waits"
        );
        gate.open(2);
    });
    stopped.unwrap();
    assert_eq!(
        recording.settlements("slow"),
        [Settlement::Acked, Settlement::Acked],
        "both finished and were acked before the broker closed"
    );
}

fn jobs_group() -> MemorySource {
    MemorySource::new("jobs").group("workers")
}

/// Publishes `N` jobs to a service whose handler is slow, shuts it down mid-way while
/// handlers run, starts the next instance on the same server, and checks that every job
/// was handled, and none that was acked was handled again.
async fn a_shutdown_mid_way_loses_nothing(by_key: bool) {
    const N: u64 = 30;
    const BEFORE_SHUTDOWN: usize = 7;
    let broker = MemoryBroker::new();
    let gate = Gate::default();
    let began = Arc::new(Notify::new());
    let notify = Arc::clone(&began);
    let slow = SubscriberDef::new(jobs_group(), waits_at_the_gate()).name("work");
    let slow = if by_key {
        slow.workers_by_key(4)
    } else {
        slow.workers(2)
    };
    let first = App::new("first instance")
        .state(gate.clone())
        .on_shutdown(move || async move {
            notify.notify_one();
            Ok::<_, BoxError>(())
        })
        .broker(broker.clone(), Router::new().subscriber(slow));
    let first = TestApp::start(first, broker.clone()).await.unwrap();
    for id in 0..N {
        let key = (id % 5).to_string();
        first
            .producer()
            .message("jobs", &Job { id })
            .key(key.as_bytes())
            .send()
            .await
            .unwrap();
    }
    gate.open(BEFORE_SHUTDOWN);
    let settled = || first.settlements("work").len();
    eventually("the first jobs to be handled", || {
        settled() == BEFORE_SHUTDOWN
    })
    .await;
    eventually("more handlers to be running", || {
        first.received("work").len() > BEFORE_SHUTDOWN
    })
    .await;

    // Once the shutdown has begun (intake is stopped by then), let every handler through:
    // only those already running take a permit.
    let recording = first.recording();
    let (stopped, ()) = tokio::join!(first.shutdown(), async {
        began.notified().await;
        gate.open(N as usize);
    });
    stopped.unwrap();
    let received_first = recording.received("work");
    assert!(
        received_first
            .iter()
            .all(|r| r.settlement == Some(Settlement::Acked)),
        "the handlers running at the shutdown finished and were acked: {received_first:?}"
    );
    let acked_first: BTreeSet<u64> = received_first
        .iter()
        .map(|r| r.decoded::<Job>().id)
        .collect();
    assert!(
        acked_first.len() > BEFORE_SHUTDOWN,
        "handlers were running at the shutdown"
    );
    assert!(acked_first.len() < N as usize, "the shutdown came mid-way");

    // The next instance of the service, a new connection to the same server.
    let next = broker.new_connection();
    let app = App::new("next instance").broker(
        next.clone(),
        Router::new().subscriber(SubscriberDef::new(jobs_group(), noop()).name("work")),
    );
    let second = TestApp::start(app, next).await.unwrap();
    second.settled().await.unwrap();
    let handled_second: BTreeSet<u64> = second
        .received("work")
        .iter()
        .map(|r| r.decoded::<Job>().id)
        .collect();
    assert!(
        acked_first.is_disjoint(&handled_second),
        "an acked job came back: {:?}",
        acked_first
            .intersection(&handled_second)
            .collect::<Vec<_>>()
    );
    let all: BTreeSet<u64> = acked_first.union(&handled_second).copied().collect();
    assert_eq!(all, (0..N).collect(), "every job was handled");
    assert!(
        second
            .settlements("work")
            .iter()
            .all(|s| *s == Settlement::Acked)
    );
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_shutdown_mid_way_through_slow_handlers_loses_nothing() {
    a_shutdown_mid_way_loses_nothing(false).await;
}

#[tokio::test]
async fn a_shutdown_mid_way_through_keyed_lanes_loses_nothing() {
    a_shutdown_mid_way_loses_nothing(true).await;
}

#[tokio::test]
async fn the_shutdown_timeout_cancels_stuck_handlers_and_leaves_their_messages_for_redelivery() {
    let broker = MemoryBroker::new();
    let stuck_on_one = SubscriberDef::new(
        jobs_group(),
        handler_fn(|job: Job| async move {
            if job.id == 1 {
                std::future::pending::<()>().await;
            }
        }),
    )
    .name("work");
    let first = App::new("first instance")
        .shutdown_timeout(Duration::from_millis(50))
        .broker(broker.clone(), Router::new().subscriber(stuck_on_one));
    let first = TestApp::start(first, broker.clone()).await.unwrap();
    first.publish("jobs", &Job { id: 0 }).await.unwrap();
    first
        .producer()
        .publish("jobs", &Job { id: 1 })
        .await
        .unwrap();
    eventually("the stuck handler to run", || {
        first.received("work").len() == 2
    })
    .await;
    let recording = first.recording();
    first.shutdown().await.unwrap();
    let stuck = &recording.received("work")[1];
    assert_eq!(stuck.decoded::<Job>(), Job { id: 1 });
    assert_eq!(stuck.ended, None, "cancelled");
    assert_eq!(stuck.settlement, None, "left unsettled");

    let next = broker.new_connection();
    let app = App::new("next instance").broker(
        next.clone(),
        Router::new().subscriber(SubscriberDef::new(jobs_group(), noop()).name("work")),
    );
    let second = TestApp::start(app, next).await.unwrap();
    second.settled().await.unwrap();
    let redelivered = second.received("work");
    assert_eq!(redelivered.len(), 1, "{redelivered:?}");
    assert_eq!(redelivered[0].decoded::<Job>(), Job { id: 1 });
    assert_eq!(redelivered[0].redelivery_count, Some(1));
    assert_eq!(second.settlements("work"), [Settlement::Acked]);
    second.shutdown().await.unwrap();
}

/// Lifecycle helpers work for any broker: a compile-time check that the test app and the
/// spy compose.
#[allow(dead_code)]
fn spies_are_test_brokers<B: TestBroker>(broker: B, log: &Log) -> impl TestBroker {
    Spy::new("any", broker, log)
}
