//! A service keeps consuming across a crash of its Redis server: an `App` with a
//! `#[subscriber]` on a stream consumer group, against a private `redis-server` with an
//! append-only file synced on every write, which the test kills with SIGKILL and starts
//! again while messages are being published. The app resubscribes by itself, and every
//! publish Redis acknowledged is handled.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ruststream::kit::live::ServerProcess;
use ruststream::runtime::{App, Message, Router};
use ruststream::{Broker, OutgoingMessage, Publisher, subscriber};
use ruststream_redis::{Config, RedisBroker, RedisSource};

const TEST: &str = "the_app_resubscribes_after_a_server_crash_and_loses_no_acknowledged_publish";
const MESSAGES: usize = 300;

static STREAM: OnceLock<String> = OnceLock::new();
static HANDLED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

fn stream() -> String {
    STREAM.get().expect("set by the test").clone()
}

#[subscriber(
    RedisSource::stream(stream())
        .group("app")
        .claim_idle(Duration::from_secs(2))
        .block(Duration::from_millis(200))
)]
async fn record(message: Message<'_>) {
    let id = String::from_utf8(message.payload().to_vec()).expect("ids are text");
    HANDLED
        .lock()
        .unwrap()
        .get_or_insert_with(HashSet::new)
        .insert(id);
}

fn handled() -> HashSet<String> {
    HANDLED.lock().unwrap().clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_resubscribes_after_a_server_crash_and_loses_no_acknowledged_publish() {
    let Some(server) = ServerProcess::start(TEST, "/usr/bin/redis-server", |port, dir| {
        let mut args: Vec<std::ffi::OsString> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--dir",
        ]
        .map(Into::into)
        .into();
        args.push(dir.as_os_str().to_owned());
        args
    })
    .await
    else {
        return;
    };
    let server = Arc::new(server);
    let url = format!("redis://{}", server.address());
    STREAM.set(support::fresh_prefix("restart")).unwrap();

    let app = App::new("restart")
        .broker(
            RedisBroker::new(support::config(&url)),
            Router::new().subscriber(record),
        )
        .start()
        .await
        .expect("the app starts");
    let publishing = RedisBroker::new(Config::new(&url).response_timeout(Duration::from_secs(1)));
    publishing.connect().await.unwrap();
    let publisher = publishing.streams();

    let mut acknowledged = Vec::new();
    for n in 0..MESSAGES {
        if n == MESSAGES / 3 {
            server.restart().await; // SIGKILL, then the same port and data again
        }
        let id = format!("id-{n:04}");
        // A publish Redis did not acknowledge is retried until it is; the test counts
        // only acknowledged ones.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match publisher
                .publish(OutgoingMessage::new(&stream(), id.as_bytes()))
                .await
            {
                Ok(()) => break,
                Err(error) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "publishing never recovered: {error}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        acknowledged.push(id);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let lost = loop {
        let got = handled();
        let lost: Vec<&String> = acknowledged
            .iter()
            .filter(|id| !got.contains(*id))
            .collect();
        if lost.is_empty() || tokio::time::Instant::now() >= deadline {
            break lost.into_iter().cloned().collect::<Vec<_>>();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        lost.is_empty(),
        "{} acknowledged publishes never handled: {lost:?}",
        lost.len()
    );
    app.shutdown().await.ok();
    publishing.shutdown().await.ok();
}
