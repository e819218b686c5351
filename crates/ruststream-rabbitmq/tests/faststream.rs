//! Wire compatibility with FastStream 0.7 (`faststream[rabbit]`, installed by
//! `scripts/test-tools` into `.tools/faststream`): a FastStream service
//! (`tests/faststream_peer.py`) and ours exchange messages through a topic exchange and
//! queues in both directions, with headers and AMQP properties, and request-reply both
//! ways (direct reply-to; our reply comes from a handler's return value).

mod support;

use std::path::PathBuf;
use std::time::Duration;

use ruststream::kit::live::{CleanUp, fresh_name, missing};
use ruststream::runtime::{App, Respond, Router, SubscriberDef, handler_fn};
use ruststream::{
    Broker, Headers, IncomingMessage, OutgoingMessage, Publisher, RequestReply, SubscriberExt,
    SubscriptionSource,
};
use ruststream_rabbitmq::{
    Config, RabbitBroker, RabbitExchange, RabbitMessage, RabbitQueue, RabbitSubscriber,
};

/// The Python with FastStream that `scripts/test-tools` installs.
fn faststream_python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/faststream/bin/python")
}

#[derive(serde::Deserialize)]
struct Ask {
    ask: String,
}

#[derive(serde::Serialize)]
struct Answer {
    answer: String,
}

async fn next(subscriber: &mut RabbitSubscriber) -> RabbitMessage {
    tokio::time::timeout(Duration::from_secs(20), subscriber.next_message())
        .await
        .unwrap_or_else(|_| panic!("no message within 20 s on {subscriber:?}"))
        .expect("the stream is open")
        .expect("no error")
}

/// The next report of the FastStream peer, as JSON.
async fn report(reports: &mut RabbitSubscriber) -> serde_json::Value {
    let message = next(reports).await;
    let report = serde_json::from_slice(message.payload()).unwrap();
    message.ack().await.unwrap();
    report
}

/// A queue as FastStream declares it here: not durable, deleted with its last consumer.
fn transient(name: &str) -> RabbitQueue {
    RabbitQueue::new(name).durable(false).auto_delete(true)
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
    let prefix = fresh_name("rsfs");
    let names = |suffix: &str| format!("{prefix}.{suffix}");
    let _clean = CleanUp::new({
        let (url, queues) = (url.clone(), ["report", "to-rs", "rs-rpc"].map(names));
        let exchange = names("events");
        move || async move {
            let broker = RabbitBroker::new(Config::new(&url));
            if broker.connect().await.is_ok() {
                for queue in &queues {
                    let _ = broker.delete_queue(queue).await;
                }
                let _ = broker.delete_exchange(&exchange).await;
                let _ = broker.shutdown().await;
            }
        }
    });
    let broker = RabbitBroker::new(Config::new(&url).connection_name("faststream-interop"));
    broker.connect().await.unwrap();
    let mut reports = transient(&names("report"))
        .subscribe(&broker)
        .await
        .unwrap();
    let events = RabbitExchange::topic(names("events"))
        .durable(false)
        .auto_delete(true);
    let mut from_fs = transient(&names("to-rs"))
        .bind(events, names("to-rs"))
        .subscribe(&broker)
        .await
        .unwrap();
    // Our responder: a handler whose return value is the reply.
    let responder = App::new("interop")
        .broker(
            broker.clone(),
            Router::new().subscriber(SubscriberDef::new(
                transient(&names("rs-rpc")),
                handler_fn(|ask: Ask| async move {
                    Respond(Answer {
                        answer: format!("rs answers {}", ask.ask),
                    })
                }),
            )),
        )
        .start()
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
    assert_eq!(report(&mut reports).await["kind"], "ready");

    // FastStream -> us, with properties and headers, then its request to us.
    broker
        .publish(OutgoingMessage::new(&names("go"), b"go"))
        .await
        .unwrap();
    let message = next(&mut from_fs).await;
    assert_eq!(message.payload(), b"from fs");
    assert_eq!(message.routing_key(), names("to-rs"));
    let headers = message.headers();
    for (name, value) in [
        ("x-tenant", "eu"),
        ("correlation-id", "cid-fs"),
        ("message-id", "mid-fs"),
        ("content-type", "text/plain"),
        ("priority", "3"),
        ("type", "order.created"),
        ("timestamp", "1700000000"),
    ] {
        assert_eq!(headers.get_str(name), Some(value), "{name}: {headers:?}");
    }
    message.ack().await.unwrap();
    let answered = report(&mut reports).await;
    assert_eq!(answered["kind"], "reply-from-rs");
    assert_eq!(answered["body"], "rs answers ping from fs", "{answered}");

    // Us -> FastStream, with properties and headers.
    let headers: Headers = [
        ("x-tenant", "us"),
        ("correlation-id", "cid-rs"),
        ("message-id", "mid-rs"),
        ("content-type", "text/plain"),
        ("type", "order.paid"),
    ]
    .into_iter()
    .collect();
    broker
        .publish(OutgoingMessage::new(&names("to-fs"), b"from rs").with_headers(&headers))
        .await
        .unwrap();
    let got = report(&mut reports).await;
    assert_eq!(got["kind"], "to-fs", "{got}");
    assert_eq!(got["body"], "from rs", "{got}");
    assert_eq!(got["headers"]["x-tenant"], "us", "{got}");
    assert_eq!(got["correlation_id"], "cid-rs", "{got}");
    assert_eq!(got["message_id"], "mid-rs", "{got}");
    assert_eq!(got["content_type"], "text/plain", "{got}");
    assert_eq!(got["type"], "order.paid", "{got}");

    // Our request, answered by a FastStream handler.
    let asking: Headers = [("content-type", "text/plain")].into_iter().collect();
    let reply = broker
        .request(
            OutgoingMessage::new(&names("fs-rpc"), b"ping from rs").with_headers(&asking),
            Duration::from_secs(10),
        )
        .await
        .expect("FastStream answers");
    assert_eq!(&reply.payload[..], b"fs answers ping from rs");
    assert!(
        reply.headers.get("correlation-id").is_some(),
        "{:?}",
        reply.headers
    );

    peer.start_kill().ok();
    peer.wait().await.ok();
    responder.shutdown().await.unwrap();
    broker.shutdown().await.ok();
}
