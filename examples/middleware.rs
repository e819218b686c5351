//! Tower middleware around handlers and publishes, on the memory broker.
//!
//! `cargo run -p ruststream-examples --example middleware`
//!
//! A timeout fails a handler that hangs (its error policy retries it), a concurrency limit
//! keeps at most two handlers running although the subscriber has eight workers, and a
//! publish layer stamps every reply with a header.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use ruststream::memory::MemoryBroker;
use ruststream::runtime::{
    App, FailurePolicy, Producer, PublishRequest, Respond, Router, SubscriberDef, handler_fn,
};
use ruststream::{BoxError, IncomingMessage, Subscribe, SubscriberExt};
use tower::limit::ConcurrencyLimitLayer;
use tower::timeout::TimeoutLayer;
use tower::{Layer, Service};

/// A publish layer that adds `x-served-by` to every publish of the app.
#[derive(Clone)]
struct ServedBy;

#[derive(Clone)]
struct ServedByService<S>(S);

impl<S> Layer<S> for ServedBy {
    type Service = ServedByService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ServedByService(inner)
    }
}

impl<'a, S> Service<PublishRequest<'a>> for ServedByService<S>
where
    S: for<'b> Service<PublishRequest<'b>, Response = (), Error = BoxError>
        + Clone
        + Send
        + 'static,
    for<'b> <S as Service<PublishRequest<'b>>>::Future: Send,
{
    type Response = ();
    type Error = BoxError;
    type Future = PublishFuture<'a>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: PublishRequest<'a>) -> Self::Future {
        let mut inner = self.0.clone();
        Box::pin(async move {
            let mut headers = request.message.headers().clone();
            headers.insert("x-served-by", "middleware-example");
            inner
                .call(PublishRequest::new(request.message.with_headers(&headers)))
                .await
        })
    }
}

/// A boxed publish future.
type PublishFuture<'a> = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>>;

/// The service on `broker`, counting attempts of the slow job and the busy jobs running:
/// what its AsyncAPI document shows.
pub(crate) fn app(
    broker: MemoryBroker,
    attempts: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
) -> App {
    let counter = attempts;
    let slow = SubscriberDef::new(
        "jobs.slow",
        handler_fn(move || {
            let counter = Arc::clone(&counter);
            async move {
                // The first attempt hangs; the timeout fails it and the retry is quick.
                if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                println!(
                    "slow job done on attempt {}",
                    counter.load(Ordering::SeqCst)
                );
            }
        }),
    )
    .layer(TimeoutLayer::new(Duration::from_millis(50)))
    .on_error(FailurePolicy::Retry);

    let gauge = running;
    let busy = SubscriberDef::new(
        "jobs.busy",
        handler_fn(move |job: u32| {
            let gauge = Arc::clone(&gauge);
            async move {
                let now = gauge.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
                gauge.fetch_sub(1, Ordering::SeqCst);
                println!("busy job {job} done ({now} running at its start, never more than 2)");
            }
        }),
    )
    .workers(8)
    .layer(ConcurrencyLimitLayer::new(2));

    let echo = SubscriberDef::new("echo", handler_fn(|n: u32| async move { Respond(n) }))
        .publish_to("echo.out");

    let router = Router::new()
        .subscriber(slow)
        .subscriber(busy)
        .subscriber(echo);
    App::new("middleware")
        .publish_layer(ServedBy)
        .broker(broker, router)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let broker = MemoryBroker::new();
    let attempts = Arc::new(AtomicUsize::new(0));
    let running = Arc::new(AtomicUsize::new(0));

    let app = app(broker.clone(), Arc::clone(&attempts), Arc::clone(&running));
    let app = app.start().await?;

    let mut replies = broker.subscribe("echo.out").await?;
    let producer = Producer::new(broker.clone());
    producer.publish("jobs.slow", &()).await?;
    for job in 0..6u32 {
        producer.publish("jobs.busy", &job).await?;
    }
    producer.publish("echo", &7u32).await?;
    if let Some(Ok(reply)) = replies.next_message().await {
        println!(
            "reply stamped by the publish layer: x-served-by = {:?}",
            reply.headers().get_str("x-served-by")
        );
        reply.ack().await?;
    }
    while attempts.load(Ordering::SeqCst) < 2
        || broker.backlog() > 0
        || running.load(Ordering::SeqCst) > 0
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.shutdown().await?;
    Ok(())
}
