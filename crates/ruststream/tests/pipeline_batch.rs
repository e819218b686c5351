//! Batch handlers go through the same pipeline as message handlers: app, router and
//! subscriber layers, observers (what `TestApp` and metrics see), failure policies with
//! per-message settlement, panics caught, in-place retries of the failed messages only.
//! Each test runs on the memory broker (which counts redeliveries) and on a `TestClient`
//! (which does not).
#![cfg(feature = "testing")]

mod support;

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use ruststream::matching::DotSubjects;
use ruststream::memory::MemoryBroker;
use ruststream::runtime::{
    App, Backoff, FailurePolicy, HandlerRequest, Router, Settle, Settlement, SubscriberDef,
    batch_handler_fn,
};
use ruststream::testing::{TestApp, TestBroker, TestClient};
use serde::{Deserialize, Serialize};
use support::eventually;
use tower::{Layer, Service};

#[derive(Debug, Serialize, Deserialize, Clone, Copy, PartialEq)]
struct Reading {
    id: u32,
}

const READINGS: u32 = 6;

/// Records, per layer, the size of each request it passed on.
#[derive(Clone, Default)]
struct Sizes(Arc<Mutex<Vec<(&'static str, usize)>>>);

impl Sizes {
    fn of(&self, layer: &str) -> Vec<usize> {
        let seen = self.0.lock().unwrap();
        seen.iter()
            .filter(|(name, _)| *name == layer)
            .map(|(_, n)| *n)
            .collect()
    }
}

#[derive(Clone)]
struct Record(&'static str, Sizes);

struct Recorded<S>(&'static str, Sizes, S);

impl<S> Layer<S> for Record {
    type Service = Recorded<S>;
    fn layer(&self, inner: S) -> Recorded<S> {
        Recorded(self.0, self.1.clone(), inner)
    }
}

impl<'a, S: Service<HandlerRequest<'a>>> Service<HandlerRequest<'a>> for Recorded<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.2.poll_ready(cx)
    }

    fn call(&mut self, request: HandlerRequest<'a>) -> S::Future {
        (self.1)
            .0
            .lock()
            .unwrap()
            .push((self.0, request.messages.len()));
        self.2.call(request)
    }
}

/// Publishes `READINGS` readings and waits until `handler` has settled them all.
async fn publish_and_settle<B: TestBroker>(app: &TestApp<B>, handler: &str, settled: usize) {
    for id in 0..READINGS {
        app.publish("readings", &Reading { id }).await.unwrap();
    }
    eventually(&format!("{settled} settlements of `{handler}`"), || {
        app.settlements(handler).len() >= settled
    })
    .await;
}

/// One batch of every reading: the batch is full before its wait is over.
fn whole_batch<H: ruststream::runtime::BatchHandler>(
    handler: H,
) -> SubscriberDef<&'static str, ruststream::runtime::Batch<H>> {
    SubscriberDef::batch("readings", handler)
        .name("readings")
        .max_messages(READINGS as usize)
        .max_wait(Duration::from_secs(5))
}

async fn layers_and_observers_see_batches<B: TestBroker>(broker: B)
where
    <B as ruststream::Subscribe>::Subscriber: ruststream::BatchSubscriber,
{
    let sizes = Sizes::default();
    let handler = batch_handler_fn(|readings: Vec<Reading>| async move {
        readings
            .iter()
            .map(|r| if r.id == 3 { Settle::Drop } else { Settle::Ack })
            .collect::<Vec<_>>()
    });
    let router = Router::new()
        .layer(Record("router", sizes.clone()))
        .subscriber(whole_batch(handler).layer(Record("subscriber", sizes.clone())));
    let service = App::new("batches")
        .layer(Record("app", sizes.clone()))
        .broker(broker.clone(), router);
    let app = TestApp::start(service, broker).await.unwrap();
    publish_and_settle(&app, "readings", READINGS as usize).await;

    for layer in ["app", "router", "subscriber"] {
        assert_eq!(
            sizes.of(layer),
            [READINGS as usize],
            "the {layer} layer saw the batch"
        );
    }
    let order: Vec<&str> = sizes.0.lock().unwrap().iter().map(|(n, _)| *n).collect();
    assert_eq!(order, ["app", "router", "subscriber"], "outermost first");
    // The observers saw each message of the batch.
    let received: Vec<u32> = app
        .received("readings")
        .iter()
        .map(|r| r.decoded::<Reading>().id)
        .collect();
    assert_eq!(received, (0..READINGS).collect::<Vec<_>>());
    let mut expected = vec![Settlement::Acked; READINGS as usize];
    expected[3] = Settlement::Rejected;
    assert_eq!(app.settlements("readings"), expected);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn layers_and_observers_see_batches_on_the_memory_broker() {
    layers_and_observers_see_batches(MemoryBroker::new()).await;
}

#[tokio::test]
async fn layers_and_observers_see_batches_on_a_test_client() {
    layers_and_observers_see_batches(TestClient::new(DotSubjects)).await;
}

async fn failed_elements_follow_the_error_policy<B: TestBroker>(broker: B)
where
    <B as ruststream::Subscribe>::Subscriber: ruststream::BatchSubscriber,
{
    let handler = batch_handler_fn(|readings: Vec<Reading>| async move {
        readings
            .iter()
            .map(|r| {
                if r.id % 3 == 0 {
                    Err(format!("reading {} is out of range", r.id))
                } else {
                    Ok(())
                }
            })
            .collect::<Vec<_>>()
    });
    let router = Router::new()
        .subscriber(
            whole_batch(handler)
                .on_error(FailurePolicy::DeadLetter)
                .dead_letter("readings.dead"),
        )
        .subscriber(
            SubscriberDef::new(
                "readings.dead",
                ruststream::runtime::handler_fn(|_: Reading| async {}),
            )
            .name("dead letters"),
        );
    let app = TestApp::start(App::new("batches").broker(broker.clone(), router), broker)
        .await
        .unwrap();
    publish_and_settle(&app, "readings", READINGS as usize).await;
    eventually("two dead letters", || {
        app.received("dead letters").len() == 2
    })
    .await;

    let settlements = app.settlements("readings");
    for (id, settlement) in settlements.iter().enumerate() {
        let expected = if id % 3 == 0 {
            Settlement::DeadLettered
        } else {
            Settlement::Acked
        };
        assert_eq!(*settlement, expected, "reading {id}");
    }
    let dead: Vec<u32> = app
        .received("dead letters")
        .iter()
        .map(|r| r.decoded::<Reading>().id)
        .collect();
    assert_eq!(dead, [0, 3]);
    let reason = app.received("dead letters")[1]
        .header(ruststream::runtime::DEAD_LETTER_REASON_HEADER)
        .unwrap()
        .to_owned();
    assert!(reason.contains("reading 3 is out of range"), "{reason}");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn failed_elements_follow_the_error_policy_on_the_memory_broker() {
    failed_elements_follow_the_error_policy(MemoryBroker::new()).await;
}

#[tokio::test]
async fn failed_elements_follow_the_error_policy_on_a_test_client() {
    failed_elements_follow_the_error_policy(TestClient::new(DotSubjects)).await;
}

async fn a_panicking_batch_follows_the_panic_policy<B: TestBroker>(broker: B)
where
    <B as ruststream::Subscribe>::Subscriber: ruststream::BatchSubscriber,
{
    let handler = batch_handler_fn(|readings: Vec<Reading>| async move {
        if readings.len() > 1 {
            panic!("a batch of {} is too many", readings.len());
        }
    });
    let router = Router::new().subscriber(whole_batch(handler).on_panic(FailurePolicy::Drop));
    let app = TestApp::start(App::new("batches").broker(broker.clone(), router), broker)
        .await
        .unwrap();
    publish_and_settle(&app, "readings", READINGS as usize).await;
    assert_eq!(
        app.settlements("readings"),
        vec![Settlement::Rejected; READINGS as usize]
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_panicking_batch_follows_the_panic_policy_on_the_memory_broker() {
    a_panicking_batch_follows_the_panic_policy(MemoryBroker::new()).await;
}

#[tokio::test]
async fn a_panicking_batch_follows_the_panic_policy_on_a_test_client() {
    a_panicking_batch_follows_the_panic_policy(TestClient::new(DotSubjects)).await;
}

async fn only_failed_elements_are_called_again_in_place<B: TestBroker>(broker: B)
where
    <B as ruststream::Subscribe>::Subscriber: ruststream::BatchSubscriber,
{
    let calls: Arc<Mutex<Vec<Vec<u32>>>> = Arc::default();
    let seen = Arc::clone(&calls);
    let handler = batch_handler_fn(move |readings: Vec<Reading>| {
        let seen = Arc::clone(&seen);
        async move {
            let ids: Vec<u32> = readings.iter().map(|r| r.id).collect();
            let first_call = seen.lock().unwrap().is_empty();
            seen.lock().unwrap().push(ids);
            // Readings 1 and 4 fail on the first call only.
            readings
                .iter()
                .map(|r| {
                    if first_call && (r.id == 1 || r.id == 4) {
                        Err("not yet")
                    } else {
                        Ok(())
                    }
                })
                .collect::<Vec<_>>()
        }
    });
    let router =
        Router::new().subscriber(whole_batch(handler).on_error(FailurePolicy::RetryInPlace {
            attempts: 3,
            backoff: Backoff::exponential(Duration::from_millis(1), Duration::from_millis(2)),
        }));
    let app = TestApp::start(App::new("batches").broker(broker.clone(), router), broker)
        .await
        .unwrap();
    publish_and_settle(&app, "readings", READINGS as usize).await;
    assert_eq!(
        *calls.lock().unwrap(),
        [(0..READINGS).collect::<Vec<_>>(), vec![1, 4]],
        "the second call takes only the failed readings"
    );
    assert_eq!(
        app.settlements("readings"),
        vec![Settlement::Acked; READINGS as usize]
    );
    assert_eq!(app.received("readings").len(), READINGS as usize);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn only_failed_elements_are_called_again_in_place_on_the_memory_broker() {
    only_failed_elements_are_called_again_in_place(MemoryBroker::new()).await;
}

#[tokio::test]
async fn only_failed_elements_are_called_again_in_place_on_a_test_client() {
    only_failed_elements_are_called_again_in_place(TestClient::new(DotSubjects)).await;
}
