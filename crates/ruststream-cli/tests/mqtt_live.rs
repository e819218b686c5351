//! `ruststream publish`, `request` and `subscribe` against the live MQTT server (Mosquitto)
//! at 127.0.0.1:1883, on fresh topics each run: MQTT 5 by default, MQTT 3.1.1 with
//! `?version=3.1.1`.
//!
//! When the server is not reachable the tests print SKIPPED, unless
//! `RUSTSTREAM_REQUIRE_SERVERS=1` (scripts/test sets it), which makes them fail with how to
//! start it.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use ruststream::{Broker as _, Subscribe as _};
use ruststream_mqtt::{Config, MqttBroker, Protocol};

mod support;
use support::{
    CLI, Server, answer_one, cli, fresh_name, request_is_answered, subscribe, text, wait_for_output,
};

/// The shared server.
const SERVER: Server = Server {
    name: "Mosquitto (MQTT)",
    address: ADDRESS,
    start: "mosquitto -d -c /etc/mosquitto/mosquitto.conf",
    service: "mosquitto",
};

const ADDRESS: &str = "127.0.0.1:1883";
const URL: &str = "mqtt://127.0.0.1:1883";
const URL_311: &str = "mqtt://127.0.0.1:1883?version=3.1.1";

#[test]
fn subscribe_prints_what_publish_sends_with_headers_on_mqtt_5() {
    if !SERVER.available("subscribe_prints_what_publish_sends_with_headers_on_mqtt_5") {
        return;
    }
    let topic = fresh_name("pubsub", '/');
    let subscriber = subscribe(URL, &topic, 3);

    // The body as an argument, with headers (user properties) and a content type.
    let sent = cli(&[
        "publish",
        URL,
        &topic,
        r#"{"id":1}"#,
        "--header",
        "trace-id=abc",
        "-H",
        "tenant=eu",
        "--content-type",
        "application/json",
    ]);
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    assert!(
        text(&sent.stderr).contains(&format!("published 8 bytes to `{topic}` on {URL}")),
        "{}",
        text(&sent.stderr)
    );
    // The body from a file.
    let file = std::env::temp_dir().join(format!("{}.body", topic.replace('/', "-")));
    std::fs::write(&file, "from a file").unwrap();
    let sent = cli(&["publish", URL, &topic, "--file", file.to_str().unwrap()]);
    std::fs::remove_file(&file).unwrap();
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    // The body from standard input.
    let mut publisher = Command::new(CLI)
        .args(["publish", URL, &topic, "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    publisher
        .stdin
        .take()
        .unwrap()
        .write_all(b"from stdin")
        .unwrap();
    let sent = publisher.wait_with_output().unwrap();
    assert!(sent.status.success(), "{}", text(&sent.stderr));

    let stdout = wait_for_output(subscriber, Duration::from_secs(30));
    assert!(
        stdout.contains(&format!("--- {topic} (8 bytes)\n")),
        "{stdout}"
    );
    assert!(stdout.contains("trace-id: abc\n"), "{stdout}");
    assert!(stdout.contains("tenant: eu\n"), "{stdout}");
    assert!(
        stdout.contains("content-type: application/json\n"),
        "{stdout}"
    );
    assert!(stdout.contains("\n{\"id\":1}\n"), "{stdout}");
    assert!(stdout.contains("\nfrom a file\n"), "{stdout}");
    assert!(stdout.contains("\nfrom stdin\n"), "{stdout}");
}

#[test]
fn mqtt_3_1_1_publishes_and_subscribes_without_headers() {
    if !SERVER.available("mqtt_3_1_1_publishes_and_subscribes_without_headers") {
        return;
    }
    let topic = fresh_name("v311", '/');
    // A wildcard filter, as MQTT writes it.
    let filter = format!("{}/+", topic);
    let subscriber = subscribe(URL_311, &filter, 1);
    let leaf = format!("{topic}/kitchen");
    let sent = cli(&["publish", URL_311, &leaf, "21.5"]);
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    let stdout = wait_for_output(subscriber, Duration::from_secs(30));
    assert_eq!(stdout, format!("--- {leaf} (4 bytes)\n\n21.5\n\n"));

    // MQTT 3.1.1 carries no headers, and has no request-reply: both are refused clearly.
    let output = cli(&["publish", URL_311, &leaf, "x", "--header", "trace-id=1"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "publish to `{leaf}` on the MQTT broker at {URL_311}"
        )),
        "{stderr}"
    );
    let output = cli(&["request", URL_311, &leaf, "x", "--timeout", "1s"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("request-reply needs MQTT 5"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_prints_the_reply_on_mqtt_5() {
    if !SERVER.available("request_prints_the_reply_on_mqtt_5") {
        return;
    }
    let topic = fresh_name("request", '/');
    let responder_id = format!("cli-test-responder-{}", std::process::id());
    let broker = MqttBroker::new(Config::new(Protocol::V5, "127.0.0.1", 1883, responder_id));
    broker.connect().await.unwrap();
    // Returns once the server acknowledged the subscription.
    let requests = broker.subscribe(&topic).await.unwrap();
    let responder = tokio::spawn(answer_one(
        broker.clone(),
        requests,
        ruststream::headers::CORRELATION_ID,
    ));
    request_is_answered(URL, &topic, responder).await;
    broker.shutdown().await.unwrap();
}

#[test]
fn a_request_nobody_answers_fails_naming_mqtt() {
    if !SERVER.available("a_request_nobody_answers_fails_naming_mqtt") {
        return;
    }
    let topic = fresh_name("unanswered", '/');
    let output = cli(&["request", URL, &topic, "ping", "--timeout", "500ms"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "the request to `{topic}` on the MQTT broker at {URL} failed: no reply within"
        )),
        "{stderr}"
    );
}

#[test]
fn a_connection_failure_names_mqtt_and_the_address_but_not_the_password() {
    // Port 9 (discard) on loopback: nothing listens there.
    let output = cli(&["publish", "mqtt://orders:s3cret@127.0.0.1:9", "orders", "x"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("cannot connect to the MQTT broker at mqtt://orders:***@127.0.0.1:9"),
        "{stderr}"
    );
    assert!(stderr.contains("Mosquitto"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

#[test]
fn a_wrong_password_is_refused_without_printing_it() {
    if !SERVER.available("a_wrong_password_is_refused_without_printing_it") {
        return;
    }
    // The shared Mosquitto may allow anonymous clients, and then accepts any password: only
    // check that the password is never printed, whatever the outcome.
    let topic = fresh_name("password", '/');
    let output = cli(&[
        "publish",
        "mqtt://someone:hunter2-secret@127.0.0.1:1883",
        &topic,
        "x",
    ]);
    let printed = format!("{}{}", text(&output.stdout), text(&output.stderr));
    assert!(!printed.contains("hunter2-secret"), "{printed}");
    assert!(printed.contains("someone:***@127.0.0.1:1883"), "{printed}");
}
