//! A JetStream service survives a crash of its server: a private `nats-server` is killed
//! with SIGKILL while messages are being published and handled, restarted on the same
//! port and store, and every message whose publish was acknowledged is handled at least
//! once, through the full runtime (an `App` with a `#[subscriber]` handler).

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ruststream::headers::MESSAGE_ID;
use ruststream::runtime::{App, Router, State};
use ruststream::{Broker, Headers, OutgoingMessage, Publisher, subscriber};
use ruststream_nats::{Config, NatsBroker, NatsSource};
use support::PrivateServer;

const MESSAGES: usize = 300;
const KILL_AFTER: usize = 120;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Order {
    id: usize,
}

#[derive(Default)]
struct Seen {
    ids: Mutex<HashSet<usize>>,
    calls: AtomicUsize,
}

#[subscriber(
    NatsSource::new("restart.orders")
        .stream("RESTART")
        .durable("workers")
        .ack_wait(Duration::from_secs(1))
        .batch(16)
)]
async fn take_order(order: Order, seen: State<Seen>) {
    // A little work, so messages are in flight when the server dies.
    tokio::time::sleep(Duration::from_millis(1)).await;
    seen.calls.fetch_add(1, Ordering::Relaxed);
    seen.ids.lock().unwrap().insert(order.id);
}

fn config(url: &str) -> Config {
    Config::new(url)
        .name("server-restart-test")
        .request_timeout(Duration::from_secs(2))
        .ack_timeout(Duration::from_secs(2))
        .shutdown_timeout(Duration::from_secs(3))
}

/// Publishes `order` through JetStream until the stream acknowledges it; the message id
/// lets the stream drop a copy it stored before a lost acknowledgement.
async fn publish_until_stored(publisher: &impl Publisher, order: &Order) {
    let payload = serde_json::to_vec(order).unwrap();
    let mut headers = Headers::new();
    headers.insert(MESSAGE_ID, format!("order-{}", order.id));
    for _ in 0..100 {
        let message = OutgoingMessage::new("restart.orders", &payload).with_headers(&headers);
        match publisher.publish(message).await {
            Ok(()) => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("order {} was never stored", order.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_jetstream_message_is_handled_after_a_sigkill_of_the_server() {
    let test = "every_jetstream_message_is_handled_after_a_sigkill_of_the_server";
    let Some(server) = PrivateServer::start(test, None).await else {
        return;
    };
    let url = server.url();

    let seen = Arc::new(Seen::default());
    let service = NatsBroker::new(config(&url));
    let app = App::new("restart")
        .state_arc(Arc::clone(&seen))
        .broker(service, Router::new().subscriber(take_order))
        .start()
        .await
        .expect("the service starts (and creates the stream and consumer)");

    let publishing = NatsBroker::new(config(&url));
    publishing.connect().await.unwrap();
    let publisher = publishing.jetstream_publisher();

    for id in 0..MESSAGES {
        if id == KILL_AFTER {
            // Mid-stream: some handled, some in flight, some not yet published.
            server.restart().await;
        }
        publish_until_stored(&publisher, &Order { id }).await;
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let handled = seen.ids.lock().unwrap().len();
        if handled == MESSAGES {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {handled} of {MESSAGES} orders were handled within 60 s of the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "{MESSAGES} orders handled at least once; {} handler calls in all (redeliveries after the crash)",
        seen.calls.load(Ordering::Relaxed)
    );

    tokio::time::timeout(Duration::from_secs(15), app.shutdown())
        .await
        .expect("the service shuts down within 15 s")
        .expect("the service shuts down cleanly");
    tokio::time::timeout(Duration::from_secs(5), publishing.shutdown())
        .await
        .expect("the publisher shuts down within 5 s")
        .ok();
}
