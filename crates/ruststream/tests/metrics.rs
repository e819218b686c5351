//! Prometheus metrics (feature `metrics`): what each message adds, and an exposition that
//! the real `promtool` accepts.
#![cfg(all(feature = "memory", feature = "metrics"))]

#[cfg(feature = "testing")]
mod support;

use std::io::Write as _;
use std::process::{Command, Stdio};
#[cfg(feature = "testing")]
use std::sync::Arc;
#[cfg(feature = "testing")]
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ruststream::memory::MemoryBroker;
use ruststream::metrics::Metrics;
use ruststream::prelude::*;
use ruststream::runtime::{
    App, FailurePolicy, Respond, Router, RunningApp, SubscriberDef, handler_fn,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: u64,
}

const WAIT: Duration = Duration::from_secs(5);

/// The value of the sample of `metric` whose labels include every one of `labels`
/// (0 when there is none).
fn value(text: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")))
        .filter(|line| {
            labels
                .iter()
                .all(|(name, value)| line.contains(&format!("{name}=\"{value}\"")))
        })
        .map(|line| {
            line.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("a sample line ends in its value: {line}"))
        })
        .sum()
}

async fn eventually(metrics: &Metrics, check: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = metrics.encode().unwrap();
        if check(&text) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the metrics never got there:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An app with a handler for each outcome: one that replies, one that fails, one that
/// panics; all drop what fails, so each message is settled once.
async fn start(metrics: &Metrics, broker: &MemoryBroker) -> RunningApp {
    let router = Router::new()
        .subscriber(
            SubscriberDef::new(
                "orders.created",
                handler_fn(|order: Order| async move { Respond(Order { id: order.id + 1 }) }),
            )
            .name("on_order")
            .publish_to("orders.audited")
            .on_decode_error(FailurePolicy::Drop),
        )
        .subscriber(
            SubscriberDef::new(
                "orders.failing",
                handler_fn(|_: Order| async move { Err::<(), _>(std::io::Error::other("no")) }),
            )
            .on_error(FailurePolicy::Drop),
        )
        .subscriber(
            SubscriberDef::new(
                "orders.panicking",
                handler_fn(|_: Order| async move {
                    if true {
                        panic!("boom");
                    }
                }),
            )
            .on_panic(FailurePolicy::Drop),
        );
    App::new("shop")
        .with_metrics(metrics.clone())
        .broker(broker.clone(), router)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn metrics_count_received_processed_exceptions_and_published() {
    let metrics = Metrics::new("shop");
    let broker = MemoryBroker::new();
    let running = start(&metrics, &broker).await;
    let body = br#"{"id":7}"#;
    for _ in 0..3 {
        broker
            .publish(OutgoingMessage::new("orders.created", body))
            .await
            .unwrap();
    }
    broker
        .publish(OutgoingMessage::new("orders.created", b"not json"))
        .await
        .unwrap();
    broker
        .publish(OutgoingMessage::new("orders.failing", body))
        .await
        .unwrap();
    broker
        .publish(OutgoingMessage::new("orders.panicking", body))
        .await
        .unwrap();

    let on_order = [("handler", "on_order"), ("destination", "orders.created")];
    let text = eventually(&metrics, |text| {
        value(text, "ruststream_processed_messages_total", &[]) >= 6.0
    })
    .await;
    running.shutdown().await.unwrap();

    assert_eq!(
        value(&text, "ruststream_received_messages_total", &on_order),
        4.0
    );
    assert_eq!(
        value(&text, "ruststream_received_bytes_total", &on_order),
        (3 * body.len() + "not json".len()) as f64
    );
    let processed = |labels: &[(&str, &str)], status: &str| {
        let mut labels = labels.to_vec();
        labels.push(("status", status));
        value(&text, "ruststream_processed_messages_total", &labels)
    };
    assert_eq!(processed(&on_order, "acked"), 3.0);
    assert_eq!(processed(&on_order, "rejected"), 1.0);
    assert_eq!(processed(&[("handler", "orders.failing")], "rejected"), 1.0);
    assert_eq!(
        processed(&[("handler", "orders.panicking")], "rejected"),
        1.0
    );
    let exceptions = |handler: &str, kind: &str| {
        value(
            &text,
            "ruststream_exceptions_total",
            &[("handler", handler), ("type", kind)],
        )
    };
    assert_eq!(exceptions("on_order", "decode"), 1.0);
    assert_eq!(exceptions("on_order", "error"), 0.0);
    assert_eq!(exceptions("orders.failing", "error"), 1.0);
    assert_eq!(exceptions("orders.panicking", "panic"), 1.0);
    assert_eq!(
        value(
            &text,
            "ruststream_processing_duration_seconds_count",
            &on_order
        ),
        4.0
    );
    assert_eq!(
        value(&text, "ruststream_in_flight_messages", &on_order),
        0.0
    );
    let audited = [("destination", "orders.audited")];
    assert_eq!(
        value(
            &text,
            "ruststream_published_messages_total",
            &[("destination", "orders.audited"), ("status", "ok")]
        ),
        3.0
    );
    assert_eq!(
        value(&text, "ruststream_publish_duration_seconds_count", &audited),
        3.0
    );
    // Every series names the app and the messaging system.
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        assert!(line.contains("app=\"shop\""), "no app label: {line}");
        assert!(
            line.contains("broker=\"memory\""),
            "no broker label: {line}"
        );
    }
}

/// `promtool check metrics` (Debian package `prometheus`, which `scripts/test-tools`
/// installs), or `None` when it is missing and missing is allowed.
fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if found {
        return Some("promtool");
    }
    assert!(
        std::env::var_os("RUSTSTREAM_REQUIRE_SERVERS").is_none_or(|v| v != "1"),
        "promtool is not installed: install the Debian package `prometheus` \
         (scripts/test-tools does)"
    );
    eprintln!("skipped: promtool is not installed (Debian package `prometheus`)");
    None
}

#[tokio::test]
async fn the_exposition_passes_promtool_check_metrics() {
    let Some(promtool) = promtool() else {
        return;
    };
    let metrics = Metrics::new("shop");
    let broker = MemoryBroker::new();
    let running = start(&metrics, &broker).await;
    for name in ["orders.created", "orders.failing", "orders.panicking"] {
        broker
            .publish(OutgoingMessage::new(name, br#"{"id":1}"#))
            .await
            .unwrap();
    }
    let text = eventually(&metrics, |text| {
        value(text, "ruststream_processed_messages_total", &[]) >= 3.0
    })
    .await;
    running.shutdown().await.unwrap();

    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed ({}):\n{}{}\n--- the exposition:\n{text}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

/// A retry asked of a subscription that cannot redeliver is counted as what it is, not as
/// a retry that will happen.
#[cfg(feature = "testing")]
#[tokio::test]
async fn a_retry_that_cannot_happen_counts_as_retry_unsupported() {
    use ruststream::matching::DotSubjects;
    use ruststream::runtime::Settle;
    use ruststream::testing::TestClient;

    let metrics = Metrics::new("shop");
    let client = TestClient::new(DotSubjects);
    let router = Router::new().subscriber(
        SubscriberDef::new(
            "orders.later",
            handler_fn(|_: Order| async { Settle::RetryAfter(Duration::from_secs(1)) }),
        )
        .name("later"),
    );
    let running = App::new("shop")
        .with_metrics(metrics.clone())
        .broker(client.clone(), router)
        .start()
        .await
        .unwrap();
    client
        .publish(OutgoingMessage::new("orders.later", br#"{"id":1}"#))
        .await
        .unwrap();

    let processed = "ruststream_processed_messages_total";
    let text = eventually(&metrics, |text| {
        value(text, processed, &[("handler", "later")]) >= 1.0
    })
    .await;
    let status = |status| {
        value(
            &text,
            processed,
            &[("handler", "later"), ("status", status)],
        )
    };
    assert_eq!(status("retry_unsupported"), 1.0, "{text}");
    assert_eq!(status("retried"), 0.0, "{text}");
    running.shutdown().await.unwrap();
}

/// Retries by mode, dead letters, decode failures and refused acks each have a family of
/// their own.
#[cfg(feature = "testing")]
#[tokio::test]
async fn retries_dead_letters_decode_and_ack_failures_are_counted() {
    use ruststream::runtime::Settle;
    use support::{Log, Spy};

    let metrics = Metrics::new("shop");
    let broker = MemoryBroker::new();
    let spy = Spy::new("spy", MemoryBroker::new(), &Log::default()).failing_acks();
    let attempts = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&attempts);
    let router = Router::new()
        .subscriber(
            SubscriberDef::new(
                "orders.retried",
                handler_fn(move |_: Order| {
                    // Redelivered now, then later, then dead-lettered.
                    let attempt = seen.fetch_add(1, Ordering::SeqCst);
                    async move {
                        match attempt {
                            0 => Settle::Retry,
                            1 => Settle::RetryAfter(Duration::from_millis(1)),
                            _ => Settle::Retry,
                        }
                    }
                }),
            )
            .name("retried")
            .max_attempts(3)
            .dead_letter("orders.dead"),
        )
        .subscriber(
            SubscriberDef::new("orders.decoded", handler_fn(|_: Order| async {})).name("decoded"),
        );
    let acked = Router::new().subscriber(
        SubscriberDef::new("orders.acked", handler_fn(|_: Order| async {})).name("acked"),
    );
    let running = App::new("shop")
        .with_metrics(metrics.clone())
        .broker(broker.clone(), router)
        .broker(spy.clone(), acked)
        .start()
        .await
        .unwrap();
    broker
        .publish(OutgoingMessage::new("orders.retried", br#"{"id":1}"#))
        .await
        .unwrap();
    broker
        .publish(OutgoingMessage::new("orders.decoded", b"not json"))
        .await
        .unwrap();
    spy.inner
        .publish(OutgoingMessage::new("orders.acked", br#"{"id":2}"#))
        .await
        .unwrap();

    let text = eventually(&metrics, |text| {
        value(text, "ruststream_dead_letters_total", &[]) >= 1.0
            && value(text, "ruststream_ack_failures_total", &[]) >= 1.0
            && value(text, "ruststream_decode_failures_total", &[]) >= 1.0
    })
    .await;
    running.shutdown().await.unwrap();

    let retries = |mode| {
        value(
            &text,
            "ruststream_retries_total",
            &[("handler", "retried"), ("mode", mode)],
        )
    };
    assert_eq!(retries("redeliver"), 1.0, "{text}");
    assert_eq!(retries("delayed"), 1.0, "{text}");
    assert_eq!(retries("unsupported"), 0.0, "{text}");
    let one = |metric, handler| value(&text, metric, &[("handler", handler)]);
    assert_eq!(
        one("ruststream_dead_letters_total", "retried"),
        1.0,
        "{text}"
    );
    assert_eq!(
        one("ruststream_decode_failures_total", "decoded"),
        1.0,
        "{text}"
    );
    assert_eq!(one("ruststream_ack_failures_total", "acked"), 1.0, "{text}");
    assert_eq!(
        one("ruststream_ack_failures_total", "retried"),
        0.0,
        "{text}"
    );
}

/// A shutdown during an in-place retry's wait leaves the message to the broker and the
/// handler is no longer counted as running.
#[tokio::test]
async fn a_shutdown_during_an_in_place_wait_leaves_nothing_in_flight() {
    use ruststream::runtime::Backoff;

    let metrics = Metrics::new("shop");
    let broker = MemoryBroker::new();
    let router = Router::new().subscriber(
        SubscriberDef::new(
            "orders.stuck",
            handler_fn(|_: Order| async { Err::<(), _>(std::io::Error::other("not yet")) }),
        )
        .name("stuck")
        .on_error(FailurePolicy::RetryInPlace {
            attempts: 3,
            backoff: Backoff::exponential(Duration::from_secs(60), Duration::from_secs(60)),
        }),
    );
    let running = App::new("shop")
        .with_metrics(metrics.clone())
        .broker(broker.clone(), router)
        .start()
        .await
        .unwrap();
    broker
        .publish(OutgoingMessage::new("orders.stuck", br#"{"id":1}"#))
        .await
        .unwrap();
    eventually(&metrics, |text| {
        value(
            text,
            "ruststream_in_flight_messages",
            &[("handler", "stuck")],
        ) == 1.0
    })
    .await;
    running.shutdown().await.unwrap();

    let text = metrics.encode().unwrap();
    let stuck = [("handler", "stuck")];
    assert_eq!(
        value(&text, "ruststream_in_flight_messages", &stuck),
        0.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "ruststream_processed_messages_total",
            &[("handler", "stuck"), ("status", "unsettled")]
        ),
        1.0,
        "{text}"
    );
}
