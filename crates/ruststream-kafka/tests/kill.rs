//! kill -9 of consuming service processes: a service restarted after a SIGKILL resumes
//! from its group's last commit with nothing lost, and a second instance in the group
//! takes over the partitions of one that was killed.
//!
//! The service is this test binary itself, run as a child process with
//! `RUSTSTREAM_KAFKA_CHILD_TOPIC` set: `child_service` then runs an `App` whose handler
//! prints `handled <id>` for each order, and waits to be killed.

mod support;

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use ruststream::kit::live::fresh_name;
use ruststream::runtime::{App, Router, SubscriberDef, handler_fn};
use ruststream::{Broker, OutgoingMessage, Publisher};
use ruststream_kafka::{KafkaBroker, KafkaSource, StartFrom};
use support::Created;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const CHILD_TOPIC: &str = "RUSTSTREAM_KAFKA_CHILD_TOPIC";
const CHILD_GROUP: &str = "RUSTSTREAM_KAFKA_CHILD_GROUP";
const CHILD_SERVERS: &str = "RUSTSTREAM_KAFKA_CHILD_SERVERS";
const CHILD_DELAY_MS: &str = "RUSTSTREAM_KAFKA_CHILD_DELAY_MS";

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Order {
    id: usize,
}

async fn handle(order: Order) {
    let delay = std::env::var(CHILD_DELAY_MS)
        .ok()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "handled {}", order.id);
    let _ = out.flush();
}

/// The service, when run as a child process by the tests below; otherwise nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_service() {
    let (Ok(topic), Ok(group), Ok(servers)) = (
        std::env::var(CHILD_TOPIC),
        std::env::var(CHILD_GROUP),
        std::env::var(CHILD_SERVERS),
    ) else {
        return;
    };
    let broker =
        KafkaBroker::new(support::config(&servers).commit_interval(Duration::from_millis(100)));
    let source = KafkaSource::new(topic)
        .group(group)
        .start_from(StartFrom::Earliest);
    let _app = App::new("kill-test")
        .broker(
            broker,
            Router::new().subscriber(SubscriberDef::new(source, handler_fn(handle))),
        )
        .start()
        .await
        .expect("the service starts");
    // On a line of its own: the test harness has printed `test child_service ... `.
    println!("\nready");
    std::future::pending::<()>().await;
}

/// A child service process and the ids it reports.
struct Service {
    child: Child,
    name: &'static str,
}

fn spawn_service(
    name: &'static str,
    servers: &str,
    topic: &str,
    group: &str,
    delay_ms: u64,
    events: mpsc::UnboundedSender<(&'static str, Event)>,
) -> Service {
    let mut child = Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "child_service",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_TOPIC, topic)
        .env(CHILD_GROUP, group)
        .env(CHILD_SERVERS, servers)
        .env(CHILD_DELAY_MS, delay_ms.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the child service starts");
    let stdout = child.stdout.take().expect("piped stdout");
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let event = if line == "ready" {
                Event::Ready
            } else if let Some(id) = line.strip_prefix("handled ").and_then(|id| id.parse().ok()) {
                Event::Handled(id)
            } else {
                continue;
            };
            if events.send((name, event)).is_err() {
                return;
            }
        }
        let _ = events.send((name, Event::Exited));
    });
    Service { child, name }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Ready,
    Handled(usize),
    Exited,
}

/// What the services reported.
#[derive(Default)]
struct Tally {
    by_service: HashMap<&'static str, Vec<usize>>,
    ready: HashSet<&'static str>,
    exited: HashSet<&'static str>,
}

impl Tally {
    fn add(&mut self, (name, event): (&'static str, Event)) {
        match event {
            Event::Ready => {
                self.ready.insert(name);
            }
            Event::Handled(id) => self.by_service.entry(name).or_default().push(id),
            Event::Exited => {
                self.exited.insert(name);
            }
        }
    }

    fn handled_by(&self, name: &str) -> usize {
        self.by_service.get(name).map_or(0, Vec::len)
    }

    fn distinct(&self) -> HashSet<usize> {
        self.by_service.values().flatten().copied().collect()
    }

    fn calls(&self) -> usize {
        self.by_service.values().map(Vec::len).sum()
    }
}

/// Takes events until `done` holds; panics naming `what` after `limit`.
async fn until(
    events: &mut mpsc::UnboundedReceiver<(&'static str, Event)>,
    tally: &mut Tally,
    limit: Duration,
    what: &str,
    done: impl Fn(&Tally) -> bool,
) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done(tally) {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) => tally.add(event),
            Ok(None) => panic!("the services' output ended before {what}"),
            Err(_) => panic!(
                "not within {limit:?}: {what} (handled per service: {:?}, distinct {})",
                tally
                    .by_service
                    .iter()
                    .map(|(name, ids)| (*name, ids.len()))
                    .collect::<Vec<_>>(),
                tally.distinct().len()
            ),
        }
    }
}

async fn kill(service: &mut Service) {
    service.child.start_kill().expect("SIGKILL the service");
    service
        .child
        .wait()
        .await
        .expect("the killed service is reaped");
    eprintln!("killed {}", service.name);
}

async fn publish_orders(broker: &KafkaBroker, topic: &str, count: usize) {
    for id in 0..count {
        let payload = serde_json::to_vec(&Order { id }).unwrap();
        let key = format!("customer-{}", id % 16);
        broker
            .publish(OutgoingMessage::new(topic, &payload).with_key(key.as_bytes()))
            .await
            .expect("publish an order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_service_resumes_from_its_last_commit_with_nothing_lost() {
    const ORDERS: usize = 300;
    const KILL_AFTER: usize = 120;
    let test = "a_killed_service_resumes_from_its_last_commit_with_nothing_lost";
    let Some(servers) = support::shared_server(test).await else {
        return;
    };
    let created = Created::default();
    let _clean_up = created.on_drop(&servers);
    let topic = created.topic(fresh_name("kill.orders").replace('_', "."));
    let group = created.group(fresh_name("kill-group"));
    created.topic(KafkaSource::new(&topic).retry_topic_in(&group));
    let broker = KafkaBroker::new(support::config(&servers));
    broker.connect().await.unwrap();
    publish_orders(&broker, &topic, ORDERS).await;

    let (sender, mut events) = mpsc::unbounded_channel();
    let mut tally = Tally::default();
    let mut first = spawn_service("first", &servers, &topic, &group, 2, sender.clone());
    until(
        &mut events,
        &mut tally,
        Duration::from_secs(60),
        "the first service handles 120 orders",
        |t| t.handled_by("first") >= KILL_AFTER,
    )
    .await;
    kill(&mut first).await;
    until(
        &mut events,
        &mut tally,
        Duration::from_secs(10),
        "the first service's output ends",
        |t| t.exited.contains("first"),
    )
    .await;
    let handled_before_kill = tally.handled_by("first");
    let committed = broker.committed_offsets(&group, &topic).await.unwrap();
    let committed = committed
        .first()
        .and_then(|(_, offset)| *offset)
        .and_then(|offset| usize::try_from(offset).ok())
        .unwrap_or(0);
    assert!(
        committed <= handled_before_kill,
        "never committed past what was handled"
    );

    let mut second = spawn_service("second", &servers, &topic, &group, 0, sender);
    until(
        &mut events,
        &mut tally,
        Duration::from_secs(90),
        "every order is handled after the restart",
        |t| t.distinct().len() == ORDERS,
    )
    .await;
    let duplicates = tally.calls() - ORDERS;
    eprintln!(
        "{ORDERS} orders, 0 lost; killed after {handled_before_kill} handled with {committed} committed; {duplicates} handled twice"
    );
    assert_eq!(
        tally.by_service["second"].first().copied(),
        Some(committed),
        "the restarted service starts at the committed offset"
    );
    assert!(
        duplicates <= handled_before_kill - committed,
        "duplicates ({duplicates}) are bounded by the uncommitted window ({})",
        handled_before_kill - committed
    );
    kill(&mut second).await;
    broker.shutdown().await.unwrap();
    created.delete(&servers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_services_share_the_partitions_and_one_takes_over_when_the_other_is_killed() {
    const ORDERS: usize = 400;
    let test = "two_services_share_the_partitions_and_one_takes_over_when_the_other_is_killed";
    let Some(servers) = support::shared_server(test).await else {
        return;
    };
    let created = Created::default();
    let _clean_up = created.on_drop(&servers);
    let topic = created.topic(fresh_name("takeover.orders").replace('_', "."));
    let group = created.group(fresh_name("takeover-group"));
    created.topic(KafkaSource::new(&topic).retry_topic_in(&group));
    let broker = KafkaBroker::new(support::config(&servers));
    broker.connect().await.unwrap();
    broker.create_topics(&[&topic], 2).await.unwrap();

    let (sender, mut events) = mpsc::unbounded_channel();
    let mut tally = Tally::default();
    let mut one = spawn_service("one", &servers, &topic, &group, 10, sender.clone());
    until(
        &mut events,
        &mut tally,
        Duration::from_secs(60),
        "service one is ready",
        |t| t.ready.contains("one"),
    )
    .await;
    let mut two = spawn_service("two", &servers, &topic, &group, 10, sender);
    until(
        &mut events,
        &mut tally,
        Duration::from_secs(60),
        "service two is ready",
        |t| t.ready.contains("two"),
    )
    .await;
    let orders = Arc::new(broker.clone());
    let topic_to_publish = topic.clone();
    let publishing =
        tokio::spawn(async move { publish_orders(&orders, &topic_to_publish, ORDERS).await });
    until(
        &mut events,
        &mut tally,
        Duration::from_secs(60),
        "both services handle orders",
        |t| t.handled_by("one") >= 40 && t.handled_by("two") >= 40,
    )
    .await;
    kill(&mut one).await;
    publishing.await.unwrap();
    until(
        &mut events,
        &mut tally,
        Duration::from_secs(120),
        "service two handles every order",
        |t| t.distinct().len() == ORDERS,
    )
    .await;
    eprintln!(
        "{ORDERS} orders, 0 lost: one handled {} before the kill, two {}; {} handled twice",
        tally.handled_by("one"),
        tally.handled_by("two"),
        tally.calls() - ORDERS
    );
    kill(&mut two).await;
    broker.shutdown().await.unwrap();
    created.delete(&servers).await;
}
