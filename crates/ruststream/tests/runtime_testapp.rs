//! `TestApp`: the service's own app in process; a publish returns once the handler chain
//! has settled; the records say what each handler received, how it settled and what was
//! published; the same test runs on the memory broker, a `TestClient`, and (by message id)
//! a live broker.
#![cfg(feature = "testing")]

mod support;

use std::time::Duration;

use ruststream::Headers;
use ruststream::headers::MESSAGE_ID;
use ruststream::matching::DotSubjects;
use ruststream::memory::MemoryBroker;
use ruststream::runtime::{App, Producer, Router, Settle, Settlement, SubscriberDef, handler_fn};
use ruststream::testing::{Ended, TestApp, TestAppError, TestBroker, TestClient};
use serde::{Deserialize, Serialize};
use support::{Log, Spy, inspect};

#[derive(Debug, Serialize, Deserialize, PartialEq, Clone)]
struct Order {
    id: u64,
    amount: f64,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Invoice {
    order: u64,
    total: f64,
}

/// The service under test: orders become invoices, invoices are mailed; a negative amount
/// is retried once after a short delay, then dropped.
fn billing_app<B: TestBroker>(broker: &B) -> App {
    let router = Router::new()
        .subscriber(
            SubscriberDef::new(
                "orders",
                handler_fn(|order: Order, out: Producer<B>| async move {
                    if order.amount < 0.0 {
                        return Ok(Settle::RetryAfter(Duration::from_millis(5)));
                    }
                    let invoice = Invoice {
                        order: order.id,
                        total: order.amount * 1.2,
                    };
                    out.publish("invoices", &invoice).await?;
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Settle::Ack)
                }),
            )
            .name("bill")
            .max_attempts(2),
        )
        .subscriber(SubscriberDef::new("invoices", handler_fn(|_: Invoice| async {})).name("mail"));
    App::new("billing").broker(broker.clone(), router)
}

/// One test, any broker. `redelivers`: whether the broker hands a retried message back
/// (the memory broker does; a test client records the retry and does not).
async fn billing_works<B: TestBroker>(broker: B, redelivers: bool) {
    let app = TestApp::start(billing_app(&broker), broker).await.unwrap();

    app.publish(
        "orders",
        &Order {
            id: 1,
            amount: 10.0,
        },
    )
    .await
    .unwrap();
    // Returned once the whole chain settled: the invoice was mailed already.
    let mailed = app.received("mail");
    assert_eq!(mailed.len(), 1);
    assert_eq!(
        mailed[0].decoded::<Invoice>(),
        Invoice {
            order: 1,
            total: 12.0
        }
    );
    assert_eq!(app.published("invoices")[0].decoded::<Invoice>().order, 1);
    assert_eq!(app.settlements("mail"), [Settlement::Acked]);

    app.publish(
        "orders",
        &Order {
            id: 2,
            amount: -1.0,
        },
    )
    .await
    .unwrap();
    // Returned once the retry came back and was given up on, or, where the broker does
    // not redeliver, once the retry was recorded.
    let attempts: Vec<u32> = app.received("bill").iter().map(|r| r.attempt).collect();
    let delay = Some(Duration::from_millis(5));
    if redelivers {
        assert_eq!(attempts, [1, 1, 2]);
        assert_eq!(
            app.settlements("bill"),
            [
                Settlement::Acked,
                Settlement::Retried { delay },
                Settlement::Rejected,
            ]
        );
    } else {
        assert_eq!(attempts, [1, 1]);
        assert_eq!(
            app.settlements("bill"),
            [Settlement::Acked, Settlement::RetryUnsupported { delay }]
        );
    }
    assert!(
        app.received("bill")
            .iter()
            .all(|r| r.ended == Some(Ended::Completed))
    );
    assert_eq!(
        app.received("mail").len(),
        1,
        "no invoice for the bad order"
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_same_test_runs_on_the_memory_broker() {
    billing_works(MemoryBroker::new(), true).await;
}

#[tokio::test]
async fn the_same_test_runs_on_a_test_client() {
    billing_works(TestClient::new(DotSubjects), false).await;
}

#[tokio::test]
async fn the_same_test_runs_against_a_live_broker_by_message_id() {
    // A broker that cannot count its backlog: the test app waits for the settlement of the
    // message carrying the `message-id` it set.
    let log = Log::default();
    billing_works(Spy::new("live", MemoryBroker::new(), &log).live(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_test_runs_on_a_multi_threaded_runtime() {
    billing_works(MemoryBroker::new(), true).await;
    billing_works(TestClient::new(DotSubjects), false).await;
}

#[tokio::test]
async fn each_publish_carries_a_fresh_message_id() {
    let broker = MemoryBroker::new();
    let app = TestApp::start(billing_app(&broker), broker).await.unwrap();
    app.publish("orders", &Order { id: 1, amount: 1.0 })
        .await
        .unwrap();
    app.publish("orders", &Order { id: 2, amount: 1.0 })
        .await
        .unwrap();
    let ids: Vec<String> = app
        .received("bill")
        .iter()
        .map(|r| r.message_id().expect("a message id").to_owned())
        .collect();
    assert_ne!(ids[0], ids[1]);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn publish_raw_sends_the_bytes_and_headers_as_given() {
    let broker = MemoryBroker::new();
    let app = TestApp::start(billing_app(&broker), broker).await.unwrap();
    let headers: Headers = [("tenant", "acme"), (MESSAGE_ID, "my-own-id")]
        .into_iter()
        .collect();
    app.publish_raw("orders", br#"{"id":3,"amount":2.5}"#, headers)
        .await
        .unwrap();
    let received = &app.received("bill")[0];
    assert_eq!(&received.payload[..], br#"{"id":3,"amount":2.5}"#);
    assert_eq!(received.header("tenant"), Some("acme"));
    assert_eq!(
        received.message_id(),
        Some("my-own-id"),
        "kept, not replaced"
    );
    assert_eq!(received.name.as_deref(), Some("orders"));
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_publish_that_does_not_settle_in_time_fails_and_says_what_is_pending() {
    let broker = MemoryBroker::new();
    let router = Router::new().subscriber(
        SubscriberDef::new(
            "orders",
            handler_fn(|_: Order| std::future::pending::<()>()),
        )
        .name("stuck"),
    );
    let app = App::new("stuck")
        .shutdown_timeout(Duration::from_millis(10))
        .broker(broker.clone(), router);
    let app = TestApp::start(app, broker)
        .await
        .unwrap()
        .with_timeout(Duration::from_millis(50));
    let error = app
        .publish("orders", &Order { id: 1, amount: 1.0 })
        .await
        .unwrap_err();
    let TestAppError::NotSettled { waited, pending } = &error else {
        panic!("{error:?}");
    };
    assert!(*waited >= Duration::from_millis(50));
    assert!(
        pending.contains("handler `stuck` has not settled attempt 1"),
        "{pending}"
    );
    let message = error.to_string();
    assert!(message.contains("TestApp::with_timeout"), "{message}");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_publish_to_a_name_nobody_handles_returns_at_once_on_an_in_process_broker() {
    let broker = MemoryBroker::new();
    let app = TestApp::start(billing_app(&broker), broker).await.unwrap();
    app.publish("nobody.listens", &1).await.unwrap();
    assert!(app.received("bill").is_empty());
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failed_publish_is_an_error() {
    let broker = MemoryBroker::new();
    let app = TestApp::start(billing_app(&broker), broker).await.unwrap();
    let error = app.publish("orders.*", &1).await.unwrap_err();
    assert!(
        matches!(&error, TestAppError::Publish { name, .. } if name == "orders.*"),
        "{error:?}"
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_records_outlive_the_app() {
    let broker = MemoryBroker::new();
    let app = TestApp::start(billing_app(&broker), broker).await.unwrap();
    app.publish("orders", &Order { id: 1, amount: 1.0 })
        .await
        .unwrap();
    let recording = app.recording();
    app.shutdown().await.unwrap();
    assert_eq!(recording.received("bill").len(), 1);
    assert_eq!(recording.settlements("mail"), [Settlement::Acked]);
    assert_eq!(recording.published("invoices").len(), 1);
}

#[tokio::test]
#[should_panic(expected = "the message handler `bill` received does not decode as")]
async fn decoding_a_record_into_the_wrong_type_fails_clearly() {
    let broker = MemoryBroker::new();
    let app = TestApp::start(billing_app(&broker), broker).await.unwrap();
    app.publish("orders", &Order { id: 1, amount: 1.0 })
        .await
        .unwrap();
    let _: Vec<String> = app.received("bill")[0].decoded();
}

#[tokio::test]
async fn a_handler_that_only_inspects_the_message_is_recorded_too() {
    let broker = MemoryBroker::new();
    let router = Router::new()
        .subscriber(SubscriberDef::new("pings", inspect(|_| Settle::Drop)).name("ping"));
    let app = TestApp::start(App::new("pings").broker(broker.clone(), router), broker)
        .await
        .unwrap();
    app.publish_raw("pings", [], Headers::new()).await.unwrap();
    app.publish_raw("pings", [], Headers::new()).await.unwrap();
    assert_eq!(
        app.settlements("ping"),
        [Settlement::Rejected, Settlement::Rejected],
        "empty payloads are told apart"
    );
    app.shutdown().await.unwrap();
}

#[cfg(feature = "msgpack")]
#[tokio::test]
async fn with_format_publishes_and_decodes_in_the_apps_format() {
    use ruststream::runtime::Format;
    let broker = MemoryBroker::new();
    let app = billing_app(&broker).format(Format::MsgPack);
    let app = TestApp::start(app, broker)
        .await
        .unwrap()
        .with_format(Format::MsgPack);
    app.publish(
        "orders",
        &Order {
            id: 4,
            amount: 10.0,
        },
    )
    .await
    .unwrap();
    assert_eq!(app.received("bill")[0].decoded::<Order>().id, 4);
    assert_eq!(app.published("invoices")[0].decoded::<Invoice>().order, 4);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_request_nobody_answers_is_an_error() {
    let broker = MemoryBroker::new();
    let app = TestApp::start(billing_app(&broker), broker).await.unwrap();
    let error = app
        .request::<Invoice>("nobody.answers", &1, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, TestAppError::Request { name, .. } if name == "nobody.answers"),
        "{error:?}"
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_test_app_can_publish_on_another_connection_to_the_same_server() {
    let broker = MemoryBroker::new();
    let app = TestApp::start(billing_app(&broker), broker.new_connection())
        .await
        .unwrap();
    app.publish("orders", &Order { id: 1, amount: 1.0 })
        .await
        .unwrap();
    assert_eq!(app.settlements("mail"), [Settlement::Acked]);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_test_app_can_be_shared_with_spawned_tasks() {
    fn send_and_sync<T: Send + Sync + 'static>(_: &T) {}
    let broker = MemoryBroker::new();
    let app = std::sync::Arc::new(TestApp::start(billing_app(&broker), broker).await.unwrap());
    send_and_sync(&app);
    let tasks: Vec<_> = (0..4)
        .map(|id| {
            let app = std::sync::Arc::clone(&app);
            tokio::spawn(async move { app.publish("orders", &Order { id, amount: 1.0 }).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(app.received("mail").len(), 4);
    std::sync::Arc::into_inner(app)
        .unwrap()
        .shutdown()
        .await
        .unwrap();
}
