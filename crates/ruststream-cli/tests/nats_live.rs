//! `ruststream publish`, `request` and `subscribe` against the live NATS server at
//! 127.0.0.1:4222, on fresh subjects each run.
//!
//! When the server is not reachable the tests print SKIPPED, unless
//! `RUSTSTREAM_REQUIRE_SERVERS=1` (scripts/test sets it), which makes them fail with how to
//! start it.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::Duration;

use ruststream::{Broker as _, Subscribe as _};
use ruststream_nats::{Config, NatsBroker};

mod support;
use support::{
    CLI, Server, answer_one, cli, fresh_name, request_is_answered, text, wait_for_output,
};

/// The shared server.
const SERVER: Server = Server {
    name: "NATS",
    address: ADDRESS,
    start: "nats-server -js -a 127.0.0.1 -p 4222",
    service: "nats",
};

const ADDRESS: &str = "127.0.0.1:4222";
const URL: &str = "nats://127.0.0.1:4222";

#[test]
fn subscribe_prints_what_publish_sends_with_headers() {
    if !SERVER.available("subscribe_prints_what_publish_sends_with_headers") {
        return;
    }
    let subject = fresh_name("pubsub", '.');
    let mut subscriber = Command::new(CLI)
        .args(["subscribe", URL, &subject, "--count", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ruststream runs");
    // Publish only once the subscription is registered at the server.
    let mut status = String::new();
    BufReader::new(subscriber.stderr.take().expect("stderr"))
        .read_line(&mut status)
        .expect("a status line");
    assert!(
        status.contains(&format!("subscribed to `{subject}`")),
        "{status}"
    );

    // The body as an argument, with headers and a content type.
    let sent = cli(&[
        "publish",
        URL,
        &subject,
        r#"{"id":1}"#,
        "--header",
        "trace-id=abc",
        "-H",
        "tenant=eu",
        "--content-type",
        "application/json",
    ]);
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    // The body from a file.
    let file = std::env::temp_dir().join(format!("{subject}.body"));
    std::fs::write(&file, "from a file").unwrap();
    let sent = cli(&["publish", URL, &subject, "--file", file.to_str().unwrap()]);
    std::fs::remove_file(&file).unwrap();
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    // The body from standard input.
    let mut publisher = Command::new(CLI)
        .args(["publish", URL, &subject, "-"])
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
        stdout.contains(&format!("--- {subject} (8 bytes)\n")),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_prints_the_reply() {
    if !SERVER.available("request_prints_the_reply") {
        return;
    }
    let subject = fresh_name("request", '.');
    let broker = NatsBroker::new(Config::new(URL));
    broker.connect().await.unwrap();
    let requests = broker.subscribe(&subject).await.unwrap();
    broker.client().unwrap().flush().await.unwrap();
    let responder = tokio::spawn(answer_one(
        broker.clone(),
        requests,
        ruststream::headers::CORRELATION_ID,
    ));
    request_is_answered(URL, &subject, responder).await;
    broker.shutdown().await.unwrap();
}

#[test]
fn a_request_nobody_answers_fails_naming_nats() {
    if !SERVER.available("a_request_nobody_answers_fails_naming_nats") {
        return;
    }
    let subject = fresh_name("unanswered", '.');
    let output = cli(&["request", URL, &subject, "ping", "--timeout", "500ms"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "the request to `{subject}` on the NATS broker at {URL} failed"
        )),
        "{stderr}"
    );
}

#[test]
fn a_connection_failure_names_the_broker_and_address_but_not_the_password() {
    // Port 9 (discard) on loopback: nothing listens there.
    let output = cli(&["publish", "nats://orders:s3cret@127.0.0.1:9", "orders", "x"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("cannot connect to the NATS broker at nats://orders:***@127.0.0.1:9"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

#[test]
fn brokers_the_tool_lacks_are_refused_clearly() {
    let output = cli(&[
        "publish",
        "amqp://guest:guest@127.0.0.1:5672",
        "orders",
        "x",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("not supported by this tool yet"),
        "{stderr}"
    );
    assert!(stderr.contains("ruststream-rabbitmq"), "{stderr}");
    assert!(
        stderr.contains("available now: nats://, redis://, mqtt://"),
        "{stderr}"
    );
    assert!(!stderr.contains("guest:guest"), "{stderr}");
}
