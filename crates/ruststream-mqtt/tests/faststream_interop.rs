//! Wire compatibility with FastStream 0.7's MQTT broker (`faststream[mqtt]` from PyPI) on
//! MQTT 5, through the shared Mosquitto: publish, consume, headers and request-reply in
//! both directions. The FastStream side is `tests/interop/faststream_service.py`.

mod support;

use std::process::Stdio;
use std::time::Duration;

use ruststream::kit::live::{fresh_name, missing};
use ruststream::{
    Broker, Headers, IncomingMessage, OutgoingMessage, Publisher, RequestReply, SubscriberExt,
    SubscriptionSource,
};
use ruststream_mqtt::{MqttBroker, MqttSource, Protocol};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

fn json_headers(from: &str) -> Headers {
    let mut headers = Headers::new();
    headers.insert("content-type", "application/json");
    headers.insert("x-from", from.to_owned());
    headers
}

async fn next_json(
    subscriber: &mut ruststream_mqtt::MqttSubscriber,
    what: &str,
) -> (Value, Headers) {
    let message = tokio::time::timeout(Duration::from_secs(10), subscriber.next_message())
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within 10 s"))
        .expect("stream open")
        .expect("message");
    let value = serde_json::from_slice(message.payload()).expect("a JSON payload");
    let headers = message.headers().clone();
    message.ack().await.expect("ack");
    (value, headers)
}

/// The Python of the project's FastStream environment, which `scripts/test-tools` makes.
const PYTHON: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../.tools/faststream/bin/python"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faststream_and_ruststream_talk_mqtt5_both_ways() {
    let test = "faststream_and_ruststream_talk_mqtt5_both_ways";
    let Some(server) = support::shared_server(test).await else {
        return;
    };
    let has_faststream = tokio::process::Command::new(PYTHON)
        .args(["-c", "import faststream.mqtt"])
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|status| status.success());
    if !has_faststream {
        missing(
            test,
            "FastStream's MQTT broker is not installed in .tools/faststream (run scripts/test-tools)",
        );
        return;
    }
    let root = format!("interop/{}", fresh_name("fs"));
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/faststream_service.py"
    );
    let mut python = tokio::process::Command::new(PYTHON)
        .args([script, &server.0, &server.1.to_string(), &root])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the FastStream service");
    let mut lines = BufReader::new(python.stdout.take().expect("stdout")).lines();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if line.contains("READY") {
                return;
            }
        }
        panic!("the FastStream service ended before it was ready");
    })
    .await
    .expect("the FastStream service is ready within 30 s");

    let broker = MqttBroker::new(support::config(&server, Protocol::V5, &fresh_name("rs_fs")));
    broker.connect().await.expect("connect");
    let mut from_py = MqttSource::new(format!("{root}/from_py"))
        .subscribe(&broker)
        .await
        .unwrap();
    let mut py_got = MqttSource::new(format!("{root}/py_got"))
        .subscribe(&broker)
        .await
        .unwrap();
    let mut rust_rpc = MqttSource::new(format!("{root}/rust_rpc"))
        .subscribe(&broker)
        .await
        .unwrap();

    // Rust publishes, FastStream consumes (payload and header) and publishes, Rust consumes.
    let headers = json_headers("rust");
    broker
        .publish(
            OutgoingMessage::new(&format!("{root}/to_py"), br#"{"n":1}"#).with_headers(&headers),
        )
        .await
        .unwrap();
    let (value, headers) = next_json(&mut from_py, "FastStream's publish").await;
    assert_eq!(value, json!({"echo": {"n": 1}, "header": "rust"}));
    assert_eq!(headers.get("x-from"), Some(&b"python"[..]));

    // Rust requests, a FastStream handler replies.
    let reply = broker
        .request(
            OutgoingMessage::new(&format!("{root}/to_py"), br#"{"n":2}"#)
                .with_headers(&json_headers("rust")),
            Duration::from_secs(10),
        )
        .await
        .expect("FastStream answers the request");
    let value: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(value, json!({"echo": {"n": 2}, "header": "rust"}));
    let _ = next_json(&mut from_py, "FastStream's second publish").await;

    // FastStream requests, Rust replies on the response topic with the correlation data.
    let responder = broker.clone();
    let answering = tokio::spawn(async move {
        let request = rust_rpc
            .next_message()
            .await
            .expect("open")
            .expect("request");
        let body: Value = serde_json::from_slice(request.payload()).unwrap();
        assert_eq!(body, json!({"ask": "from python"}));
        assert_eq!(request.headers().get("x-from"), Some(&b"python"[..]));
        let reply_to = request.reply_to().expect("a response topic").to_owned();
        let mut headers = json_headers("rust");
        if let Some(correlation) = request.headers().get("correlation-id") {
            headers.insert("correlation-id", bytes::Bytes::copy_from_slice(correlation));
        }
        responder
            .publish(
                OutgoingMessage::new(&reply_to, br#"{"answer":"from rust"}"#)
                    .with_headers(&headers),
            )
            .await
            .unwrap();
        request.ack().await.unwrap();
    });
    broker
        .publish(
            OutgoingMessage::new(&format!("{root}/go"), br#""go""#)
                .with_headers(&json_headers("rust")),
        )
        .await
        .unwrap();
    let (value, _) = next_json(&mut py_got, "FastStream's reply report").await;
    assert_eq!(
        value,
        json!({"reply": {"answer": "from rust"}, "header": "rust"})
    );
    answering.await.unwrap();

    broker.shutdown().await.unwrap();
    let _ = python.kill().await;
}
