//! What the live tests of the `ruststream` command share: finding the server (and failing
//! or skipping when it is not there), fresh names, running the command and reading what a
//! `subscribe` printed.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The binary under test.
pub const CLI: &str = env!("CARGO_BIN_EXE_ruststream");

/// A broker server the tests talk to.
pub struct Server {
    /// Its name in messages (`NATS`, `Redis`, `Mosquitto (MQTT)`).
    pub name: &'static str,
    /// `host:port`.
    pub address: &'static str,
    /// How to start it by hand.
    pub start: &'static str,
    /// The `scripts/services` argument that starts it.
    pub service: &'static str,
}

impl Server {
    /// Whether the server is there; `false` (after printing SKIPPED) when it is not and
    /// that is allowed; a panic naming it and how to start it when
    /// `RUSTSTREAM_REQUIRE_SERVERS=1`.
    pub fn available(&self, test: &str) -> bool {
        let Server {
            name,
            address,
            start,
            service,
        } = self;
        let reachable = std::net::TcpStream::connect_timeout(
            &address.parse().expect("an address"),
            Duration::from_secs(2),
        )
        .is_ok();
        if reachable {
            return true;
        }
        if std::env::var("RUSTSTREAM_REQUIRE_SERVERS").is_ok_and(|value| value == "1") {
            panic!(
                "{name} is not reachable at {address} and RUSTSTREAM_REQUIRE_SERVERS=1: start \
                 it with `scripts/services {service}` (or `{start}`)"
            );
        }
        eprintln!(
            "SKIPPED {test}: no {name} server at {address} (start it with `scripts/services \
             {service}`, or set RUSTSTREAM_REQUIRE_SERVERS=1 to fail instead)"
        );
        false
    }
}

/// A name no other run uses: `cli`, `label`, the process id and the time, joined by
/// `separator` (`.` for subjects and channels, `/` for MQTT topics).
pub fn fresh_name(label: &str, separator: char) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let pid = std::process::id();
    format!("cli{separator}{label}{separator}{pid}{separator}{nanos}")
}

/// Runs `ruststream` with `args` to the end.
pub fn cli(args: &[&str]) -> Output {
    Command::new(CLI)
        .args(args)
        .output()
        .expect("ruststream runs")
}

/// Bytes as text, for messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `ruststream subscribe URL NAME --count N`, returned once the server confirmed the
/// subscription (its status line).
pub fn subscribe(url: &str, name: &str, count: u64) -> Child {
    let mut subscriber = Command::new(CLI)
        .args(["subscribe", url, name, "--count", &count.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ruststream runs");
    let mut status = String::new();
    BufReader::new(subscriber.stderr.take().expect("stderr"))
        .read_line(&mut status)
        .expect("a status line");
    assert!(
        status.contains(&format!("subscribed to `{name}`")),
        "{status}"
    );
    subscriber
}

/// The standard output of `child` once it has exited with success; fails if it has not
/// within `limit` (killing it).
pub fn wait_for_output(mut child: Child, limit: Duration) -> String {
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stdout.read_to_end(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let seen = text(&reader.join().unwrap_or_default());
            panic!("`ruststream subscribe` did not end within {limit:?}; it printed:\n{seen}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = text(&reader.join().expect("the reader thread"));
    assert!(
        status.success(),
        "`ruststream subscribe` failed: {status}\n{stdout}"
    );
    stdout
}

/// Answers the first request on `requests` through `publisher`: `echo: <body>` to its
/// reply-to, with its `question` header back as `answered` and its correlation id (the
/// header named `correlation`, which is the broker's) kept; then acks the request.
pub async fn answer_one<P, S>(publisher: P, mut requests: S, correlation: &str)
where
    P: ruststream::Publisher,
    S: ruststream::Subscriber,
{
    use ruststream::{Headers, IncomingMessage as _, OutgoingMessage, SubscriberExt as _};

    let request = requests
        .next_message()
        .await
        .expect("the subscription is open")
        .expect("a request");
    let asked = request
        .headers()
        .get_str("question")
        .unwrap_or("")
        .to_owned();
    let body = format!("echo: {}", String::from_utf8_lossy(request.payload()));
    let mut headers = Headers::new();
    headers.insert("answered", asked);
    if let Some(id) = request.headers().get(correlation) {
        headers.insert(correlation.to_owned(), id.to_vec());
    }
    let reply_to = request
        .reply_to()
        .expect("a request has a reply-to")
        .to_owned();
    publisher
        .publish(OutgoingMessage::new(&reply_to, body.as_bytes()).with_headers(&headers))
        .await
        .unwrap_or_else(|error| panic!("publishing the reply failed: {error}"));
    request.ack().await.expect("the request acks");
}

/// Runs `ruststream request URL NAME ping --header question=why` while `responder`
/// answers, and checks the reply it printed (body on stdout, headers on stderr).
pub async fn request_is_answered(url: &str, name: &str, responder: tokio::task::JoinHandle<()>) {
    let (url_for_cli, name_for_cli) = (url.to_owned(), name.to_owned());
    let output = tokio::task::spawn_blocking(move || {
        cli(&[
            "request",
            &url_for_cli,
            &name_for_cli,
            "ping",
            "--header",
            "question=why",
            "--timeout",
            "5s",
        ])
    })
    .await
    .expect("the command ran");
    tokio::time::timeout(Duration::from_secs(10), responder)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the request never reached the responder; ruststream said: {}",
                text(&output.stderr)
            )
        })
        .expect("the responder did not panic");
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(text(&output.stdout), "echo: ping\n");
    assert!(stderr.contains("answered: why"), "{stderr}");
}
