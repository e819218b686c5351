//! A consuming service killed with SIGKILL in the middle of a stream and of a list loses
//! nothing: the test runs the consumer as a child process (this test binary again, in the
//! child role), counts the ids it handled in Redis, kills it with `kill -9` part-way,
//! starts another, and checks that every published id was handled.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use ruststream::SubscriptionSource;
use ruststream::prelude::*;
use ruststream_redis::{RedisBroker, RedisSource};

/// Set in the child: `<url>|<kind>|<name>|<handled list>`.
const CHILD_ROLE: &str = "RUSTSTREAM_REDIS_KILL9_CHILD";
const TEST: &str = "a_consumer_killed_with_sigkill_loses_nothing_on_streams_and_lists";
const MESSAGES: usize = 200;

fn source(kind: &str, name: &str) -> RedisSource {
    match kind {
        "stream" => RedisSource::stream(name)
            .group("workers")
            .consumer(format!("worker-{}", std::process::id()))
            .claim_idle(Duration::from_secs(1))
            .block(Duration::from_millis(100)),
        _ => RedisSource::list(name)
            .visibility_timeout(Duration::from_secs(1))
            .block(Duration::from_millis(100)),
    }
}

/// The consuming service: records each payload in the `handled` list, then acks. Runs
/// until it is killed.
async fn child(spec: &str) {
    let parts: Vec<&str> = spec.split('|').collect();
    let [url, kind, name, handled] = parts[..] else {
        panic!("bad child spec {spec}");
    };
    let broker = RedisBroker::new(support::config(url));
    broker.connect().await.unwrap();
    let mut subscriber = source(kind, name).subscribe(&broker).await.unwrap();
    let mut record = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    while let Some(message) = subscriber.next_message().await {
        let message = message.unwrap();
        // Some work, so that the kill lands in the middle.
        tokio::time::sleep(Duration::from_millis(3)).await;
        let _: i64 = redis::cmd("RPUSH")
            .arg(handled)
            .arg(message.payload())
            .query_async(&mut record)
            .await
            .unwrap();
        message.ack().await.unwrap();
    }
}

fn spawn_child(spec: &str) -> tokio::process::Child {
    tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ROLE, spec)
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the consuming child")
}

async fn handled(connection: &mut redis::aio::MultiplexedConnection, key: &str) -> Vec<String> {
    redis::cmd("LRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query_async(connection)
        .await
        .unwrap()
}

async fn kill9_loses_nothing(url: &str, kind: &str) {
    let prefix = support::fresh_prefix(&format!("kill9{kind}"));
    let clean_up = support::clean_up(url, &prefix);
    let name = format!("{prefix}:work");
    let handled_key = format!("{prefix}:handled");
    let spec = format!("{url}|{kind}|{name}|{handled_key}");
    let broker = RedisBroker::new(support::config(url));
    broker.connect().await.unwrap();
    // The group exists before anything is published (a list needs nothing).
    drop(source(kind, &name).subscribe(&broker).await.unwrap());
    let publisher = match kind {
        "stream" => broker.streams(),
        _ => broker.lists(),
    };
    let sent: Vec<String> = (0..MESSAGES).map(|n| format!("id-{n:04}")).collect();
    for id in &sent {
        publisher
            .publish(OutgoingMessage::new(&name, id.as_bytes()))
            .await
            .unwrap();
    }
    let mut connection = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();

    let mut first = spawn_child(&spec);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while handled(&mut connection, &handled_key).await.len() < MESSAGES / 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{kind}: the first consumer handles nothing"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    let at_kill = handled(&mut connection, &handled_key).await.len();
    assert!(
        at_kill < MESSAGES,
        "{kind}: killed after the end ({at_kill})"
    );

    let mut second = spawn_child(&spec);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let ids = loop {
        let ids: HashSet<String> = handled(&mut connection, &handled_key)
            .await
            .into_iter()
            .collect();
        if ids.len() == MESSAGES || tokio::time::Instant::now() >= deadline {
            break ids;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    second.start_kill().ok();
    second.wait().await.ok();
    let lost: Vec<&String> = sent.iter().filter(|id| !ids.contains(*id)).collect();
    let total = handled(&mut connection, &handled_key).await.len();
    eprintln!(
        "{kind}: killed after {at_kill} handled; {} distinct, {} handled twice, {} lost",
        ids.len(),
        total - ids.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "{kind}: lost {} ids: {lost:?}", lost.len());
    broker.shutdown().await.unwrap();
    clean_up.run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_with_sigkill_loses_nothing_on_streams_and_lists() {
    if let Ok(spec) = std::env::var(CHILD_ROLE) {
        child(&spec).await;
        return;
    }
    let Some(url) = support::shared_server(TEST).await else {
        return;
    };
    kill9_loses_nothing(&url, "stream").await;
    kill9_loses_nothing(&url, "list").await;
}
