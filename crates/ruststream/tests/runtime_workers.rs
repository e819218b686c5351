//! Concurrency: `workers(n)` bounds the messages in flight per subscriber;
//! `workers_by_key(n)` keeps per-key order on `n` lanes and rotates keyless messages.
//!
//! No timing: concurrency is measured with a gauge, and handlers wait at barriers that
//! only open when the expected number of them run at once (a handler that could not run
//! concurrently would leave the barrier shut and the test would fail on its timeout).
#![cfg(feature = "testing")]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ruststream::matching::DotSubjects;
use ruststream::memory::MemoryBroker;
use ruststream::runtime::{App, Router, State, SubscriberDef, handler_fn};
use ruststream::testing::{TestApp, TestBroker, TestClient};
use serde::{Deserialize, Serialize};
use support::Gauge;
use tokio::sync::Barrier;

#[derive(Debug, Serialize, Deserialize, Clone, Copy)]
struct Step {
    /// The key's number, or `None` for a keyless message.
    key: Option<u32>,
    seq: u32,
}

/// Shared by the handlers of one test.
struct Probe {
    gauge: Gauge,
    barrier: Barrier,
    /// In flight per key.
    per_key: Mutex<HashMap<u32, usize>>,
    /// Per key, the sequence numbers in the order handled.
    order: Mutex<HashMap<u32, Vec<u32>>>,
    keyless: Mutex<Vec<u32>>,
}

impl Probe {
    fn new(barrier: usize) -> Arc<Self> {
        Arc::new(Self {
            gauge: Gauge::default(),
            barrier: Barrier::new(barrier),
            per_key: Mutex::new(HashMap::new()),
            order: Mutex::new(HashMap::new()),
            keyless: Mutex::new(Vec::new()),
        })
    }
}

async fn start<B: TestBroker>(
    broker: B,
    probe: &Arc<Probe>,
    subscriber: impl ruststream::runtime::IntoSubscriber<B>,
) -> TestApp<B> {
    let app = App::new("workers")
        .state_arc(Arc::clone(probe))
        .broker(broker.clone(), Router::new().subscriber(subscriber));
    TestApp::start(app, broker).await.unwrap()
}

/// Waits at the barrier with every other handler of its round.
fn meets_at_the_barrier() -> impl ruststream::runtime::Handler {
    handler_fn(|_: Step, probe: State<Probe>| async move {
        probe.gauge.enter();
        probe.barrier.wait().await;
        probe.gauge.leave();
    })
}

async fn workers_bound_in_flight<B: TestBroker>(broker: B) {
    workers_bound_in_flight_with(broker, 4).await;
}

async fn workers_bound_in_flight_with<B: TestBroker>(broker: B, workers: usize) {
    let probe = Probe::new(workers);
    let jobs = SubscriberDef::new("jobs", meets_at_the_barrier())
        .name("work")
        .workers(workers);
    let app = start(broker, &probe, jobs).await;
    let published = 3 * workers as u32;
    for seq in 0..published {
        app.producer()
            .publish("jobs", &Step { key: None, seq })
            .await
            .unwrap();
        // Lets the workers take it and go idle again, so each message finds them waiting.
        tokio::task::yield_now().await;
    }
    tokio::time::timeout(Duration::from_secs(10), app.settled())
        .await
        .expect("every worker takes messages: the barrier opens")
        .unwrap();
    assert_eq!(app.received("work").len(), published as usize);
    assert_eq!(
        probe.gauge.max(),
        workers,
        "{workers} at a time: the barrier of {workers} opened, and no more ran beside them"
    );
    app.shutdown().await.unwrap();
}

/// Past the number of workers polled together, they take turns at the stream through an
/// async lock: all of them still get messages at once.
#[tokio::test]
async fn many_workers_all_take_messages_at_once() {
    workers_bound_in_flight_with(MemoryBroker::new(), 40).await;
}

#[tokio::test]
async fn workers_n_bounds_messages_in_flight() {
    workers_bound_in_flight(MemoryBroker::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_n_bounds_messages_in_flight_on_a_multi_threaded_runtime() {
    workers_bound_in_flight(MemoryBroker::new()).await;
}

#[tokio::test]
async fn workers_n_bounds_messages_in_flight_on_a_test_client() {
    workers_bound_in_flight(TestClient::new(DotSubjects)).await;
}

#[tokio::test]
async fn one_worker_by_default_handles_messages_one_at_a_time_in_order() {
    let probe = Probe::new(1);
    let jobs = SubscriberDef::new(
        "jobs",
        handler_fn(|step: Step, probe: State<Probe>| async move {
            probe.gauge.enter();
            tokio::task::yield_now().await;
            probe.keyless.lock().unwrap().push(step.seq);
            probe.gauge.leave();
        }),
    )
    .name("work");
    let app = start(MemoryBroker::new(), &probe, jobs).await;
    for seq in 0..50 {
        app.producer()
            .publish("jobs", &Step { key: None, seq })
            .await
            .unwrap();
    }
    app.settled().await.unwrap();
    assert_eq!(probe.gauge.max(), 1);
    assert_eq!(*probe.keyless.lock().unwrap(), (0..50).collect::<Vec<_>>());
    app.shutdown().await.unwrap();
}

/// Records per-key order and per-key concurrency; yields a varying number of times so
/// that lanes interleave.
fn records_order() -> impl ruststream::runtime::Handler {
    handler_fn(|step: Step, probe: State<Probe>| async move {
        probe.gauge.enter();
        let Some(key) = step.key else {
            for _ in 0..step.seq % 3 {
                tokio::task::yield_now().await;
            }
            probe.keyless.lock().unwrap().push(step.seq);
            probe.gauge.leave();
            return;
        };
        {
            let mut per_key = probe.per_key.lock().unwrap();
            let running = per_key.entry(key).or_default();
            *running += 1;
            assert_eq!(*running, 1, "two messages of key {key} ran at once");
        }
        for _ in 0..(step.seq * 7 + key) % 5 {
            tokio::task::yield_now().await;
        }
        probe
            .order
            .lock()
            .unwrap()
            .entry(key)
            .or_default()
            .push(step.seq);
        *probe.per_key.lock().unwrap().get_mut(&key).unwrap() -= 1;
        probe.gauge.leave();
    })
}

async fn per_key_order_holds<B: TestBroker>(broker: B) {
    const KEYS: u32 = 40;
    const PER_KEY: u32 = 25;
    let probe = Probe::new(1);
    let jobs = SubscriberDef::new("jobs", records_order())
        .name("work")
        .workers_by_key(8);
    let app = start(broker, &probe, jobs).await;
    let mut keyless = 0;
    for seq in 0..PER_KEY {
        for key in 0..KEYS {
            let name = format!("key-{key}");
            app.producer()
                .message(
                    "jobs",
                    &Step {
                        key: Some(key),
                        seq,
                    },
                )
                .key(name.as_bytes())
                .send()
                .await
                .unwrap();
            if key % 10 == 0 {
                app.producer()
                    .publish(
                        "jobs",
                        &Step {
                            key: None,
                            seq: keyless,
                        },
                    )
                    .await
                    .unwrap();
                keyless += 1;
            }
        }
    }
    app.settled().await.unwrap();

    let order = probe.order.lock().unwrap().clone();
    assert_eq!(order.len(), KEYS as usize);
    for (key, seqs) in order.iter() {
        assert_eq!(
            *seqs,
            (0..PER_KEY).collect::<Vec<_>>(),
            "key {key} was handled out of order"
        );
    }
    assert_eq!(probe.keyless.lock().unwrap().len(), keyless as usize);
    assert!(
        probe.gauge.max() <= 8,
        "at most 8 lanes: {}",
        probe.gauge.max()
    );
    assert!(probe.gauge.max() > 1, "the lanes ran side by side");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn workers_by_key_keeps_per_key_order_over_many_keys() {
    per_key_order_holds(MemoryBroker::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_by_key_keeps_per_key_order_on_a_multi_threaded_runtime() {
    per_key_order_holds(MemoryBroker::new()).await;
}

#[tokio::test]
async fn workers_by_key_keeps_per_key_order_on_a_test_client() {
    per_key_order_holds(TestClient::new(DotSubjects)).await;
}

#[tokio::test]
async fn keyless_messages_rotate_over_the_lanes() {
    // Eight keyless messages meet at a barrier of eight: it opens only if each went to a
    // lane of its own. Twice, to go round the lanes again.
    let probe = Probe::new(8);
    let jobs = SubscriberDef::new("jobs", meets_at_the_barrier())
        .name("work")
        .workers_by_key(8);
    let app = start(MemoryBroker::new(), &probe, jobs).await;
    for seq in 0..16 {
        app.producer()
            .publish("jobs", &Step { key: None, seq })
            .await
            .unwrap();
    }
    app.settled().await.unwrap();
    assert_eq!(app.received("work").len(), 16);
    assert_eq!(probe.gauge.max(), 8);
    app.shutdown().await.unwrap();
}

/// A name that records what the runtime told it its handlers hold at once.
#[derive(Clone)]
struct Counted(&'static str, Arc<Mutex<Vec<usize>>>);

impl ruststream::SubscriptionSource<MemoryBroker> for Counted {
    type Subscriber = <MemoryBroker as ruststream::Subscribe>::Subscriber;

    fn name(&self) -> &str {
        self.0
    }

    async fn subscribe(
        self,
        broker: &MemoryBroker,
    ) -> Result<Self::Subscriber, ruststream::memory::MemoryError> {
        ruststream::Subscribe::subscribe(broker, self.0).await
    }

    fn with_in_flight(self, in_flight: usize) -> Self {
        self.1.lock().unwrap().push(in_flight);
        self
    }
}

#[tokio::test]
async fn the_source_learns_how_many_messages_its_handlers_hold_at_once() {
    let told: Arc<Mutex<Vec<usize>>> = Arc::default();
    let router = Router::new()
        .subscriber(
            SubscriberDef::new(
                Counted("one", Arc::clone(&told)),
                handler_fn(|_: Step| async {}),
            )
            .workers(8),
        )
        .subscriber(
            SubscriberDef::batch(
                Counted("many", Arc::clone(&told)),
                ruststream::runtime::batch_handler_fn(|_: Vec<Step>| async {}),
            )
            .max_messages(50)
            .workers(2),
        );
    let running = App::new("in flight")
        .broker(MemoryBroker::new(), router)
        .start()
        .await
        .unwrap();
    running.shutdown().await.unwrap();
    let mut told = told.lock().unwrap().clone();
    told.sort_unstable();
    assert_eq!(told, [8, 100]);
}
