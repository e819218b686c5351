//! Wire compatibility with FastStream 0.7 (`faststream[kafka]`, installed by
//! `scripts/test-tools` into `.tools/faststream`): a FastStream Kafka service
//! (`tests/faststream_peer.py`, on aiokafka) and this crate exchange messages through
//! the local server in both directions, with keys and headers (correlation id, content
//! type).

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use ruststream::kit::live::{fresh_name, missing};
use ruststream::prelude::*;
use ruststream::{Headers, SubscriptionSource};
use ruststream_kafka::{KafkaBroker, KafkaMessage, KafkaSource, KafkaSubscriber, StartFrom};
use support::Created;

/// The Python with FastStream that `scripts/test-tools` installs.
fn faststream_python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/faststream/bin/python")
}

async fn next(subscriber: &mut KafkaSubscriber) -> KafkaMessage {
    tokio::time::timeout(Duration::from_secs(60), subscriber.next_message())
        .await
        .unwrap_or_else(|_| panic!("no message within 60 s on {subscriber:?}"))
        .expect("the stream is open")
        .expect("no error")
}

/// The next report of the FastStream peer, as JSON.
async fn report(reports: &mut KafkaSubscriber) -> serde_json::Value {
    let message = next(reports).await;
    let report = serde_json::from_slice(message.payload()).expect("a JSON report");
    message.ack().await.unwrap();
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faststream_kafka_service_and_ours_understand_each_other() {
    let test = "a_faststream_kafka_service_and_ours_understand_each_other";
    let Some(servers) = support::shared_server(test).await else {
        return;
    };
    let python = faststream_python();
    if !python.exists() {
        missing(
            test,
            format_args!(
                "FastStream is not installed at {} (run scripts/test-tools)",
                python.display()
            ),
        );
        return;
    }
    let created = Created::default();
    let _clean_up = created.on_drop(&servers);
    let prefix = fresh_name("faststream").replace('_', "-");
    let [to_fs, to_rs, go, reports_topic] =
        ["to-fs", "to-rs", "go", "report"].map(|name| created.topic(format!("{prefix}.{name}")));
    for group in ["fs", "go"] {
        created.group(format!("{prefix}-{group}"));
    }
    let broker = KafkaBroker::new(support::config(&servers));
    broker.connect().await.unwrap();
    broker
        .create_topics(&[&to_fs, &to_rs, &go, &reports_topic], 1)
        .await
        .unwrap();
    let subscribe = |topic: &str, group: &str| {
        let group = created.group(format!("{prefix}-{group}"));
        created.topic(KafkaSource::new(topic).retry_topic_in(&group));
        KafkaSource::new(topic)
            .group(group)
            .start_from(StartFrom::Earliest)
    };
    let mut reports = subscribe(&reports_topic, "rs-reports")
        .subscribe(&broker)
        .await
        .unwrap();
    let mut from_fs = subscribe(&to_rs, "rs").subscribe(&broker).await.unwrap();

    let mut peer = tokio::process::Command::new(&python)
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/faststream_peer.py"))
        .args([&servers, &prefix])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the FastStream peer starts");
    assert_eq!(report(&mut reports).await["kind"], "ready");

    // Ours to FastStream: key, content type, correlation id and a header of our own.
    let mut headers = Headers::new();
    headers.insert("content-type", "application/json");
    headers.insert("correlation_id", "cid-rs-1");
    headers.insert("x-origin", "ruststream");
    broker
        .publish(
            OutgoingMessage::new(&to_fs, br#"{"id":1,"from":"ruststream"}"#)
                .with_headers(&headers)
                .with_key(b"rs-key-1"),
        )
        .await
        .unwrap();
    let seen = report(&mut reports).await;
    assert_eq!(seen["kind"], "message", "{seen}");
    assert_eq!(seen["body"], r#"{"id":1,"from":"ruststream"}"#, "{seen}");
    assert_eq!(seen["key"], "rs-key-1", "{seen}");
    assert_eq!(seen["correlation_id"], "cid-rs-1", "{seen}");
    assert_eq!(seen["content_type"], "application/json", "{seen}");
    assert_eq!(seen["headers"]["x-origin"], "ruststream", "{seen}");

    // FastStream to ours: a text and a JSON message.
    broker
        .publish(OutgoingMessage::new(&go, b"go"))
        .await
        .unwrap();
    let text = next(&mut from_fs).await;
    assert_eq!(text.payload(), b"text from faststream");
    assert_eq!(text.partition_key(), Some(&b"fs-key-1"[..]));
    assert_eq!(text.headers().get_str("correlation_id"), Some("cid-fs-1"));
    assert_eq!(text.headers().get_str("content-type"), Some("text/plain"));
    assert_eq!(text.headers().get_str("x-origin"), Some("faststream"));
    text.ack().await.unwrap();
    let json = next(&mut from_fs).await;
    let body: serde_json::Value = serde_json::from_slice(json.payload()).unwrap();
    assert_eq!(body, serde_json::json!({"id": 7, "from": "faststream"}));
    assert_eq!(json.partition_key(), Some(&b"fs-key-2"[..]));
    assert_eq!(json.headers().get_str("correlation_id"), Some("cid-fs-2"));
    assert_eq!(
        json.headers().get_str("content-type"),
        Some("application/json")
    );
    json.ack().await.unwrap();

    peer.start_kill().ok();
    peer.wait().await.ok();
    reports.close().await;
    from_fs.close().await;
    broker.shutdown().await.unwrap();
    created.delete(&servers).await;
}
