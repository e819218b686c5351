//! Wire compatibility with FastStream 0.7 (`faststream[redis]`, installed by
//! `scripts/test-tools` into `.tools/faststream`): a FastStream service
//! (`tests/faststream_peer.py`) and this crate exchange messages on channels, lists and
//! streams in both directions, with headers (correlation id, content type) and
//! request-reply both ways.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use ruststream::kit::live::missing;
use ruststream::prelude::*;
use ruststream::{Headers, RequestReply, SubscriptionSource};
use ruststream_redis::{RedisBroker, RedisMessage, RedisSource, RedisSubscriber};

/// The Python with FastStream that `scripts/test-tools` installs.
fn faststream_python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/faststream/bin/python")
}

async fn next(subscriber: &mut RedisSubscriber) -> RedisMessage {
    tokio::time::timeout(Duration::from_secs(20), subscriber.next_message())
        .await
        .unwrap_or_else(|_| panic!("no message within 20 s on {subscriber:?}"))
        .expect("the stream is open")
        .expect("no error")
}

/// The next report of the FastStream peer: `(kind, body, headers)`.
async fn report(reports: &mut RedisSubscriber) -> (String, String, serde_json::Value) {
    let message = next(reports).await;
    let report: serde_json::Value = serde_json::from_slice(message.payload()).unwrap();
    message.ack().await.unwrap();
    (
        report["kind"].as_str().unwrap().to_owned(),
        report["body"].as_str().unwrap().to_owned(),
        report["headers"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faststream_service_and_ours_understand_each_other() {
    let test = "a_faststream_service_and_ours_understand_each_other";
    let Some(url) = support::shared_server(test).await else {
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
    let prefix = support::fresh_prefix("faststream");
    let clean_up = support::clean_up(&url, &prefix);
    let broker = RedisBroker::new(support::config(&url));
    broker.connect().await.unwrap();
    let to_rs = format!("{prefix}:to-rs");
    let mut channel = RedisSource::channel(format!("{to_rs}-channel"))
        .subscribe(&broker)
        .await
        .unwrap();
    let mut list = RedisSource::list(format!("{to_rs}-list"))
        .subscribe(&broker)
        .await
        .unwrap();
    let mut stream = RedisSource::stream(format!("{to_rs}-stream"))
        .group("rs")
        .subscribe(&broker)
        .await
        .unwrap();
    let mut rpc = RedisSource::channel(format!("{prefix}:rs-rpc"))
        .subscribe(&broker)
        .await
        .unwrap();
    let mut reports = RedisSource::list(format!("{prefix}:report"))
        .subscribe(&broker)
        .await
        .unwrap();

    let mut peer = tokio::process::Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/faststream_peer.py"
        ))
        .arg(&url)
        .arg(&prefix)
        .kill_on_drop(true)
        .spawn()
        .expect("start the FastStream peer");
    let (kind, _, _) = report(&mut reports).await;
    assert_eq!(kind, "ready");

    // FastStream -> us, on each kind, then its request to us.
    broker
        .publish(OutgoingMessage::new(&format!("{prefix}:go"), b"go"))
        .await
        .unwrap();
    for (subscriber, kind) in [
        (&mut channel, "channel"),
        (&mut list, "list"),
        (&mut stream, "stream"),
    ] {
        let message = next(subscriber).await;
        assert_eq!(message.payload(), format!("from fs {kind}").as_bytes());
        let headers = message.headers();
        assert_eq!(
            headers.get_str("x-tenant"),
            Some("eu"),
            "{kind}: {headers:?}"
        );
        assert_eq!(
            headers.get_str("correlation_id"),
            Some(format!("cid-{kind}").as_str()),
            "{kind}"
        );
        assert_eq!(
            headers.get_str("content-type"),
            Some("text/plain"),
            "{kind}"
        );
        message.ack().await.unwrap();
    }
    let request = next(&mut rpc).await;
    assert_eq!(request.payload(), b"ping");
    let reply_to = request
        .reply_to()
        .expect("FastStream's request names its reply channel")
        .to_owned();
    let mut reply_headers = Headers::new();
    if let Some(id) = request.headers().get_str("correlation_id") {
        reply_headers.insert("correlation_id", id.to_owned());
    }
    reply_headers.insert("content-type", "text/plain");
    broker
        .publish(OutgoingMessage::new(&reply_to, b"rs:ping").with_headers(&reply_headers))
        .await
        .unwrap();
    let (kind, body, _) = report(&mut reports).await;
    assert_eq!((kind.as_str(), body.as_str()), ("reply", "rs:ping"));

    // Us -> FastStream, on each kind, with headers.
    let to_fs = format!("{prefix}:to-fs");
    let mut headers = Headers::new();
    headers.insert("correlation_id", "cid-rs");
    headers.insert("content-type", "text/plain");
    headers.insert("x-tenant", "us");
    for (publisher, kind) in [
        (broker.channels(), "channel"),
        (broker.lists(), "list"),
        (broker.streams(), "stream"),
    ] {
        let name = format!("{to_fs}-{kind}");
        let body = format!("from rs {kind}");
        publisher
            .publish(OutgoingMessage::new(&name, body.as_bytes()).with_headers(&headers))
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(report(&mut reports).await);
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    for ((kind, body, headers), expected) in got.iter().zip(["channel", "list", "stream"]) {
        assert_eq!(kind, expected);
        assert_eq!(body, &format!("from rs {kind}"));
        if kind != "stream" {
            // Channels and lists carry the headers in the envelope FastStream reads.
            assert_eq!(headers["x-tenant"], "us", "{kind}: {headers}");
            assert_eq!(headers["correlation_id"], "cid-rs", "{kind}: {headers}");
        }
    }

    // Our request, answered by a FastStream handler.
    let reply = broker
        .request(
            OutgoingMessage::new(&format!("{prefix}:fs-rpc"), b"hello"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(&reply.payload[..], b"fs:hello");

    peer.start_kill().ok();
    peer.wait().await.ok();
    broker.shutdown().await.unwrap();
    clean_up.run().await;
}
