//! `ruststream publish`, `request` and `subscribe` against the live Redis server at
//! 127.0.0.1:6379 (Pub/Sub channels and patterns), on fresh channels each run.
//!
//! When the server is not reachable the tests print SKIPPED, unless
//! `RUSTSTREAM_REQUIRE_SERVERS=1` (scripts/test sets it), which makes them fail with how to
//! start it.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use ruststream::{Broker as _, Subscribe as _};
use ruststream_redis::{Config, RedisBroker};

mod support;
use support::{
    CLI, Server, answer_one, cli, fresh_name, request_is_answered, subscribe, text, wait_for_output,
};

/// The shared server.
const SERVER: Server = Server {
    name: "Redis",
    address: ADDRESS,
    start: "redis-server --daemonize yes --bind 127.0.0.1 --port 6379",
    service: "redis",
};

const ADDRESS: &str = "127.0.0.1:6379";
const URL: &str = "redis://127.0.0.1:6379";

#[test]
fn subscribe_prints_what_publish_sends_with_headers() {
    if !SERVER.available("subscribe_prints_what_publish_sends_with_headers") {
        return;
    }
    let channel = fresh_name("pubsub", '.');
    let subscriber = subscribe(URL, &channel, 3);

    // The body as an argument, with headers and a content type.
    let sent = cli(&[
        "publish",
        URL,
        &channel,
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
    let file = std::env::temp_dir().join(format!("{channel}.body"));
    std::fs::write(&file, "from a file").unwrap();
    let sent = cli(&["publish", URL, &channel, "--file", file.to_str().unwrap()]);
    std::fs::remove_file(&file).unwrap();
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    // The body from standard input.
    let mut publisher = Command::new(CLI)
        .args(["publish", URL, &channel, "-"])
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
        stdout.contains(&format!("--- {channel} (8 bytes)\n")),
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
fn a_glob_subscribes_to_a_pattern() {
    if !SERVER.available("a_glob_subscribes_to_a_pattern") {
        return;
    }
    let channel = fresh_name("pattern", '.');
    let subscriber = subscribe(URL, &format!("{channel}.*"), 1);
    let leaf = format!("{channel}.kitchen");
    let sent = cli(&["publish", URL, &leaf, "21.5"]);
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    let stdout = wait_for_output(subscriber, Duration::from_secs(30));
    assert!(
        stdout.contains(&format!("--- {leaf} (4 bytes)\n")),
        "{stdout}"
    );
    assert!(stdout.contains("\n21.5\n"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_prints_the_reply() {
    if !SERVER.available("request_prints_the_reply") {
        return;
    }
    let channel = fresh_name("request", '.');
    let broker = RedisBroker::new(Config::new(URL));
    broker.connect().await.unwrap();
    let requests = broker.subscribe(&channel).await.unwrap();
    let responder = tokio::spawn(answer_one(
        broker.clone(),
        requests,
        ruststream_redis::CORRELATION_ID,
    ));
    request_is_answered(URL, &channel, responder).await;
    broker.shutdown().await.unwrap();
}

#[test]
fn a_request_nobody_answers_fails_naming_redis() {
    if !SERVER.available("a_request_nobody_answers_fails_naming_redis") {
        return;
    }
    let channel = fresh_name("unanswered", '.');
    let output = cli(&["request", URL, &channel, "ping", "--timeout", "500ms"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "the request to `{channel}` on the Redis broker at {URL} failed"
        )),
        "{stderr}"
    );
}

#[test]
fn a_connection_failure_names_redis_and_the_address_but_not_the_password() {
    // Port 9 (discard) on loopback: nothing listens there.
    let output = cli(&[
        "publish",
        "redis://orders:s3cret@127.0.0.1:9",
        "orders",
        "x",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("cannot connect to the Redis broker at redis://orders:***@127.0.0.1:9"),
        "{stderr}"
    );
    assert!(stderr.contains("redis-server"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}
