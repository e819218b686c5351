//! Tower layers around handlers, on a subscriber, a router and the app.
#![cfg(feature = "testing")]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use ruststream::memory::MemoryBroker;
use ruststream::prelude::*;
use ruststream::runtime::{
    App, FailurePolicy, HandlerRequest, Outcome, Producer, Router, SubscriberDef, handler_fn,
};
use support::{dead_letter_reason, eventually, next_within};
use tower::limit::ConcurrencyLimitLayer;
use tower::timeout::TimeoutLayer;
use tower::{Layer, Service};

/// A layer that writes its name to a shared log when a request passes through it.
#[derive(Clone)]
struct Trace(&'static str, Arc<Mutex<Vec<&'static str>>>);

struct TraceService<S>(&'static str, Arc<Mutex<Vec<&'static str>>>, S);

impl<S> Layer<S> for Trace {
    type Service = TraceService<S>;
    fn layer(&self, inner: S) -> TraceService<S> {
        TraceService(self.0, Arc::clone(&self.1), inner)
    }
}

impl<'a, S: Service<HandlerRequest<'a>>> Service<HandlerRequest<'a>> for TraceService<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.2.poll_ready(cx)
    }

    fn call(&mut self, request: HandlerRequest<'a>) -> S::Future {
        self.1.lock().unwrap().push(self.0);
        self.2.call(request)
    }
}

#[tokio::test]
async fn layers_wrap_from_subscriber_out_to_app() {
    let broker = MemoryBroker::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let handled = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&handled);
    let subscriber = SubscriberDef::new(
        "traced",
        handler_fn(move || {
            let seen = Arc::clone(&seen);
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }),
    )
    .layer(Trace("subscriber", Arc::clone(&log)));
    let inner = Router::new()
        .subscriber(subscriber)
        .layer(Trace("inner router", Arc::clone(&log)));
    let outer = Router::new()
        .include(inner)
        .layer(Trace("outer router", Arc::clone(&log)));
    let running = App::new("layers")
        .layer(Trace("app", Arc::clone(&log)))
        .broker(broker.clone(), outer)
        .start()
        .await
        .unwrap();
    broker
        .publish(OutgoingMessage::new("traced", b"{}"))
        .await
        .unwrap();
    eventually("the traced message handled", || {
        handled.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(
        *log.lock().unwrap(),
        ["app", "outer router", "inner router", "subscriber"]
    );
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_timeout_layer_fails_slow_handlers_into_the_error_policy() {
    let broker = MemoryBroker::new();
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&attempts);
    let subscriber = SubscriberDef::new(
        "slow",
        handler_fn(move || {
            let counter = Arc::clone(&counter);
            async move {
                // The first attempt hangs past the timeout; the retry is quick.
                if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
            }
        }),
    )
    .layer(TimeoutLayer::new(Duration::from_millis(20)))
    .on_error(FailurePolicy::Retry);
    let running = App::new("timeout")
        .broker(broker.clone(), Router::new().subscriber(subscriber))
        .start()
        .await
        .unwrap();
    broker
        .publish(OutgoingMessage::new("slow", b"{}"))
        .await
        .unwrap();
    eventually("a second, quick attempt", || {
        attempts.load(Ordering::SeqCst) == 2
    })
    .await;
    eventually("an empty backlog", || broker.backlog() == 0).await;
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_concurrency_limit_layer_bounds_in_flight_handlers_below_workers() {
    let broker = MemoryBroker::new();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let (gauge, top, finished) = (Arc::clone(&in_flight), Arc::clone(&peak), Arc::clone(&done));
    let subscriber = SubscriberDef::new(
        "limited",
        handler_fn(move || {
            let (gauge, top, finished) =
                (Arc::clone(&gauge), Arc::clone(&top), Arc::clone(&finished));
            async move {
                let now = gauge.fetch_add(1, Ordering::SeqCst) + 1;
                top.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                gauge.fetch_sub(1, Ordering::SeqCst);
                finished.fetch_add(1, Ordering::SeqCst);
            }
        }),
    )
    .workers(8)
    .layer(ConcurrencyLimitLayer::new(2));
    let running = App::new("limit")
        .broker(broker.clone(), Router::new().subscriber(subscriber))
        .start()
        .await
        .unwrap();
    let producer = Producer::new(broker.clone());
    for id in 0..40u32 {
        producer.publish("limited", &id).await.unwrap();
    }
    eventually("all 40 jobs done", || done.load(Ordering::SeqCst) == 40).await;
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&peak),
        "at most 2 handlers at once, saw {peak}"
    );
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_layer_can_refuse_without_calling_the_handler() {
    // A layer that answers without calling the handler: proves requests go through it.
    #[derive(Clone)]
    struct Refuse;
    struct Refused;
    impl<S> Layer<S> for Refuse {
        type Service = Refused;
        fn layer(&self, _: S) -> Refused {
            Refused
        }
    }
    impl<'a> Service<HandlerRequest<'a>> for Refused {
        type Response = Outcome;
        type Error = std::io::Error;
        type Future = std::future::Ready<Result<Outcome, std::io::Error>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: HandlerRequest<'a>) -> Self::Future {
            std::future::ready(Err(std::io::Error::other("refused by middleware")))
        }
    }
    let broker = MemoryBroker::new();
    let called = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&called);
    let subscriber = SubscriberDef::new(
        "refused",
        handler_fn(move || {
            let seen = Arc::clone(&seen);
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }),
    )
    .layer(Refuse)
    .on_error(FailurePolicy::DeadLetter)
    .dead_letter("refused.dead");
    let running = App::new("refuse")
        .broker(broker.clone(), Router::new().subscriber(subscriber))
        .start()
        .await
        .unwrap();
    let mut dead = broker.subscribe("refused.dead").await.unwrap();
    broker
        .publish(OutgoingMessage::new("refused", b"{}"))
        .await
        .unwrap();
    let letter = next_within(&mut dead).await;
    let reason = dead_letter_reason(&letter);
    assert!(reason.contains("refused by middleware"), "{reason}");
    assert_eq!(called.load(Ordering::SeqCst), 0);
    running.shutdown().await.unwrap();
}

/// A publish layer that adds a header to every publish.
#[derive(Clone)]
struct Stamp;

#[derive(Clone)]
struct StampService<S>(S);

impl<S> Layer<S> for Stamp {
    type Service = StampService<S>;
    fn layer(&self, inner: S) -> StampService<S> {
        StampService(inner)
    }
}

impl<'a, S> Service<ruststream::runtime::PublishRequest<'a>> for StampService<S>
where
    S: for<'b> Service<
            ruststream::runtime::PublishRequest<'b>,
            Response = (),
            Error = ruststream::BoxError,
        > + Clone
        + Send
        + 'static,
    for<'b> <S as Service<ruststream::runtime::PublishRequest<'b>>>::Future: Send,
{
    type Response = ();
    type Error = ruststream::BoxError;
    type Future = futures::future::BoxFuture<'a, Result<(), ruststream::BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ruststream::BoxError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: ruststream::runtime::PublishRequest<'a>) -> Self::Future {
        let mut inner = self.0.clone();
        Box::pin(async move {
            let mut headers = request.message.headers().clone();
            headers.insert("x-stamped", "yes");
            let stamped = request.message.with_headers(&headers);
            inner
                .call(ruststream::runtime::PublishRequest::new(stamped))
                .await
        })
    }
}

#[tokio::test]
async fn publish_layers_see_producer_and_reply_publishes() {
    use ruststream::runtime::Respond;
    let broker = MemoryBroker::new();
    let subscriber = SubscriberDef::new("echo", handler_fn(|n: u32| async move { Respond(n + 1) }))
        .publish_to("echo.out");
    let running = App::new("stamps")
        .publish_layer(Stamp)
        .broker(broker.clone(), Router::new().subscriber(subscriber))
        .start()
        .await
        .unwrap();
    let mut out = broker.subscribe("echo.out").await.unwrap();
    let mut inbound = broker.subscribe("echo").await.unwrap();
    // A producer built outside the app publishes straight to the broker.
    Producer::new(broker.clone())
        .publish("echo", &1u32)
        .await
        .unwrap();
    let reply = next_within(&mut out).await;
    assert_eq!(
        reply.headers().get_str("x-stamped"),
        Some("yes"),
        "the reply went through the layer"
    );
    assert_eq!(reply.payload(), b"2");
    let seen = next_within(&mut inbound).await;
    assert_eq!(
        seen.headers().get_str("x-stamped"),
        None,
        "a plain producer does not"
    );
    running.shutdown().await.unwrap();
}
