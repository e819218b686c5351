//! Tracing: a span per publish and per delivery with the messaging attributes, a trace id
//! that crosses a publish and a consume through the message headers (feature `otel`), and
//! log lines that name the handler and the destination.
#![cfg(all(feature = "memory", feature = "otel", feature = "macros"))]

#[path = "support/captured_logs.rs"]
mod captured_logs;
use captured_logs::Captured;

use std::time::Duration;

use opentelemetry::Value;
use opentelemetry::trace::{SpanKind, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use ruststream::Headers;
use ruststream::memory::MemoryBroker;
use ruststream::otel::{TRACEPARENT, opentelemetry, opentelemetry_sdk};
use ruststream::runtime::{App, FailurePolicy, Producer, Router, State, SubscriberDef, handler_fn};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing_subscriber::layer::SubscriberExt as _;

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: u64,
}

const WAIT: Duration = Duration::from_secs(5);

/// What the handler saw of each delivery: the `traceparent` header.
type Seen = mpsc::UnboundedSender<Option<String>>;

fn attribute<'s>(span: &'s SpanData, key: &str) -> Option<&'s Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn span<'s>(spans: &'s [SpanData], name: &str) -> &'s SpanData {
    spans
        .iter()
        .find(|span| span.name == name)
        .unwrap_or_else(|| {
            let names: Vec<_> = spans.iter().map(|span| span.name.to_string()).collect();
            panic!("no span named `{name}` among {names:?}")
        })
}

/// Tells the test which `traceparent` the message carried.
#[ruststream::subscriber("orders.created")]
async fn on_order(_: Order, headers: &Headers, seen: State<Seen>) {
    let _ = seen.send(headers.get_str(TRACEPARENT).map(str::to_owned));
}

#[tokio::test]
async fn a_trace_id_crosses_a_publish_and_a_consume() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry().with(ruststream::otel::layer(&provider));
    // The test's runtime has one thread: the app's tasks see this subscriber too.
    let _default = tracing::subscriber::set_default(subscriber);

    let (seen, mut saw) = mpsc::unbounded_channel::<Option<String>>();
    let broker = MemoryBroker::new();
    let running = App::new("traced")
        .state(seen)
        .broker(broker.clone(), Router::new().subscriber(on_order))
        .start()
        .await
        .unwrap();

    Producer::new(broker.clone())
        .message("orders.created", &Order { id: 1 })
        .message_id("order-1")
        .send()
        .await
        .unwrap();
    let traceparent = tokio::time::timeout(WAIT, saw.recv())
        .await
        .expect("the handler ran")
        .expect("the channel is open");
    running.shutdown().await.unwrap();
    provider.force_flush().unwrap();

    let traceparent = traceparent.expect("the published message carries a traceparent header");
    let spans = exporter.get_finished_spans().unwrap();
    let publish = span(&spans, "send orders.created");
    let process = span(&spans, "process orders.created");
    assert_ne!(publish.span_context.trace_id(), TraceId::INVALID);
    assert_eq!(
        process.span_context.trace_id(),
        publish.span_context.trace_id(),
        "the consumer's span continues the producer's trace"
    );
    assert_eq!(process.parent_span_id, publish.span_context.span_id());
    assert!(
        traceparent.contains(&publish.span_context.trace_id().to_string()),
        "{traceparent} carries the trace id"
    );
    assert_eq!(publish.span_kind, SpanKind::Producer);
    assert_eq!(process.span_kind, SpanKind::Consumer);

    for span in [publish, process] {
        assert_eq!(
            attribute(span, "messaging.system"),
            Some(&Value::from("memory"))
        );
        assert_eq!(
            attribute(span, "messaging.destination.name"),
            Some(&Value::from("orders.created"))
        );
        assert_eq!(
            attribute(span, "messaging.message.id"),
            Some(&Value::from("order-1"))
        );
        assert_eq!(
            attribute(span, "messaging.message.body.size"),
            Some(&Value::from(r#"{"id":1}"#.len() as i64))
        );
    }
    assert_eq!(
        attribute(process, "handler"),
        Some(&Value::from("on_order"))
    );
}

#[tokio::test]
async fn log_lines_name_the_handler_and_the_destination() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let (seen, mut saw) = mpsc::unbounded_channel::<Option<String>>();
    let broker = MemoryBroker::new();
    let running = App::new("logged")
        .state(seen)
        .broker(
            broker.clone(),
            Router::new().subscriber(
                SubscriberDef::new(
                    "orders.failing",
                    handler_fn(|_: Order, seen: State<Seen>| async move {
                        let _ = seen.send(None);
                        Err::<(), _>(std::io::Error::other("out of stock"))
                    }),
                )
                .name("on_failing")
                .on_error(FailurePolicy::Drop),
            ),
        )
        .start()
        .await
        .unwrap();
    Producer::new(broker.clone())
        .publish("orders.failing", &Order { id: 2 })
        .await
        .unwrap();
    tokio::time::timeout(WAIT, saw.recv())
        .await
        .expect("the handler ran");
    running.shutdown().await.unwrap();

    let text = logs.text();
    let line = text
        .lines()
        .find(|line| line.contains("the handler failed"))
        .unwrap_or_else(|| panic!("no line about the failure in:\n{text}"));
    assert!(line.contains("handler=on_failing"), "{line}");
    assert!(line.contains("destination=orders.failing"), "{line}");
    assert!(line.contains("out of stock"), "{line}");
    // The delivery's span is the line's context, with its messaging attributes.
    assert!(line.contains("ruststream.process{"), "{line}");
    assert!(line.contains("messaging.system=\"memory\""), "{line}");
}

#[test]
fn the_otlp_exporter_builds_without_a_collector() {
    // Nothing listens on port 9 of loopback; building connects to nothing, and exporting
    // fails without taking anything down.
    let exporter = ruststream::otel::otlp_exporter(Some("http://127.0.0.1:9/v1/traces")).unwrap();
    let provider = ruststream::otel::tracer_provider("orders", exporter);
    let subscriber = tracing_subscriber::registry().with(ruststream::otel::layer(&provider));
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!("ruststream.publish").in_scope(|| {});
    });
    let _ = provider.force_flush();
    let _ = provider.shutdown();
}

#[tokio::test]
async fn a_batch_is_one_span_that_continues_its_first_messages_trace() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry().with(ruststream::otel::layer(&provider));
    let _default = tracing::subscriber::set_default(subscriber);

    let (seen, mut saw) = mpsc::unbounded_channel::<usize>();
    let broker = MemoryBroker::new();
    let batches = SubscriberDef::batch(
        "orders.batched",
        ruststream::runtime::batch_handler_fn(move |orders: Vec<Order>| {
            let seen = seen.clone();
            async move {
                let _ = seen.send(orders.len());
            }
        }),
    )
    .name("take_orders")
    .max_messages(3)
    .max_wait(WAIT);
    let running = App::new("traced")
        .broker(broker.clone(), Router::new().subscriber(batches))
        .start()
        .await
        .unwrap();
    let producer = Producer::new(broker.clone());
    for id in 1..=3 {
        producer
            .message("orders.batched", &Order { id })
            .message_id(format!("order-{id}"))
            .send()
            .await
            .unwrap();
    }
    let size = tokio::time::timeout(WAIT, saw.recv())
        .await
        .expect("the batch handler ran")
        .expect("the channel is open");
    running.shutdown().await.unwrap();
    provider.force_flush().unwrap();

    assert_eq!(size, 3, "one batch of three");
    let spans = exporter.get_finished_spans().unwrap();
    let processes: Vec<&SpanData> = spans
        .iter()
        .filter(|span| span.name == "process orders.batched")
        .collect();
    assert_eq!(processes.len(), 1, "one span for the batch");
    let process = processes[0];
    assert_eq!(
        attribute(process, "messaging.batch.message_count"),
        Some(&Value::from(3_i64))
    );
    let first_publish = spans
        .iter()
        .filter(|span| span.name == "send orders.batched")
        .find(|span| attribute(span, "messaging.message.id") == Some(&Value::from("order-1")))
        .expect("the first publish has a span");
    assert_eq!(
        process.span_context.trace_id(),
        first_publish.span_context.trace_id(),
        "the batch's span continues its first message's trace"
    );
}
