//! Recovery, on a private RabbitMQ node the tests start, kill and restart (never the
//! shared server): a service rides out a SIGKILL of the server with no confirmed publish
//! lost, and publishes during the outage fail clearly or wait, as configured.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use ruststream::IncomingMessage;
use ruststream::runtime::{App, Router, State};
use ruststream::{
    Broker, OutgoingMessage, Publisher, SubscriberExt, SubscriptionSource, subscriber,
};
use ruststream_rabbitmq::{Config, RabbitBroker, RabbitError, RabbitQueue};
use support::{PRIVATE_PASSWORD, PRIVATE_USER, PrivateNode};
use tokio::sync::Notify;

const MESSAGES: usize = 300;
const KILL_AFTER: usize = 120;
const QUEUE: &str = "recovery.orders";

/// The durable queue of the service (the handler's source has the same flags; the
/// prefetch is not part of the declaration). A classic queue: on RabbitMQ 3.10 a
/// single-node quorum queue declared seconds before a SIGKILL may find no leader after
/// the restart, and the server then refuses (nacks) every publish to it for minutes.
fn orders_queue() -> RabbitQueue {
    RabbitQueue::new(QUEUE)
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Order {
    id: usize,
}

#[derive(Default)]
struct Seen {
    ids: Mutex<HashSet<usize>>,
    calls: Mutex<usize>,
    changed: Notify,
}

#[subscriber(RabbitQueue::new(QUEUE).prefetch(16), workers = 4)]
async fn take_order(order: Order, seen: State<Seen>) {
    // Yield once, so messages are in flight when the server dies.
    tokio::task::yield_now().await;
    *seen.calls.lock() += 1;
    seen.ids.lock().insert(order.id);
    seen.changed.notify_waiters();
}

fn config(node: &PrivateNode) -> Config {
    Config::new(node.url())
        .credentials(PRIVATE_USER, PRIVATE_PASSWORD)
        .connection_name("recovery-test")
        .connection_timeout(Duration::from_secs(2))
        .shutdown_timeout(Duration::from_secs(3))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_rides_out_a_sigkill_of_the_server_and_no_confirmed_publish_is_lost() {
    let test = "a_service_rides_out_a_sigkill_of_the_server_and_no_confirmed_publish_is_lost";
    let Some(node) = PrivateNode::start(test).await else {
        return;
    };
    let seen = Arc::new(Seen::default());
    let app = App::new("recovery")
        .state_arc(Arc::clone(&seen))
        .broker(
            RabbitBroker::new(config(&node)),
            Router::new().subscriber(take_order),
        )
        .start()
        .await
        .expect("the service starts (and declares its queue)");

    // Publishes wait for the connection to come back rather than fail.
    let publishing = RabbitBroker::new(config(&node).publish_wait(Duration::from_secs(120)));
    publishing.connect().await.unwrap();
    // The producer declares the queue too (and again after reconnecting), so that no
    // publish finds it missing while the service is still subscribing again.
    publishing.declare_queue(&orders_queue()).await.unwrap();
    for id in 0..MESSAGES {
        if id == KILL_AFTER {
            // Mid-stream: some handled, some in flight, some not yet published.
            node.restart().await;
        }
        let payload = serde_json::to_vec(&Order { id }).unwrap();
        publishing
            .publish(OutgoingMessage::new(QUEUE, &payload))
            .await
            .unwrap_or_else(|error| panic!("order {id} was not confirmed: {error}"));
    }

    let all_handled = async {
        loop {
            let changed = seen.changed.notified();
            if seen.ids.lock().len() == MESSAGES {
                return;
            }
            changed.await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(90), all_handled)
        .await
        .is_err()
    {
        let handled = seen.ids.lock().len();
        panic!("only {handled} of {MESSAGES} confirmed orders were handled within 90 s");
    }
    eprintln!(
        "{MESSAGES} confirmed orders handled at least once; {} handler calls in all",
        *seen.calls.lock()
    );
    tokio::time::timeout(Duration::from_secs(15), app.shutdown())
        .await
        .expect("the service shuts down within 15 s")
        .expect("the service shuts down cleanly");
    publishing.shutdown().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_during_an_outage_fail_clearly_or_wait_as_configured() {
    let test = "publishes_during_an_outage_fail_clearly_or_wait_as_configured";
    let Some(node) = PrivateNode::start(test).await else {
        return;
    };
    let queue = "outage.orders";
    let failing = RabbitBroker::new(config(&node));
    let waiting = RabbitBroker::new(config(&node).publish_wait(Duration::from_secs(120)));
    failing.connect().await.unwrap();
    waiting.connect().await.unwrap();
    failing
        .declare_queue(&RabbitQueue::new(queue))
        .await
        .unwrap();
    failing
        .publish(OutgoingMessage::new(queue, b"before"))
        .await
        .unwrap();

    node.kill().await;
    let error = failing
        .publish(OutgoingMessage::new(queue, b"during"))
        .await
        .expect_err("the server is down");
    assert!(matches!(error, RabbitError::Disconnected { .. }), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("connection is down") && text.contains("publish_wait"),
        "{text}"
    );
    assert!(!text.contains(PRIVATE_PASSWORD), "{text}");

    let waiting_publish = tokio::spawn({
        let waiting = waiting.clone();
        async move {
            waiting
                .publish(OutgoingMessage::new(queue, b"waited"))
                .await
        }
    });
    node.start_again().await;
    tokio::time::timeout(Duration::from_secs(60), waiting_publish)
        .await
        .expect("the waiting publish completes once the server is back")
        .unwrap()
        .expect("and is confirmed");
    failing
        .publish(OutgoingMessage::new(queue, b"after"))
        .await
        .expect("the failing broker reconnects on its next publish");

    let mut subscriber = RabbitQueue::new(queue).subscribe(&failing).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let message = tokio::time::timeout(Duration::from_secs(5), subscriber.next_message())
            .await
            .expect("a message")
            .unwrap()
            .unwrap();
        got.push(String::from_utf8(message.payload().to_vec()).unwrap());
        message.ack().await.unwrap();
    }
    assert_eq!(got, ["before", "waited", "after"]);
    failing.shutdown().await.ok();
    waiting.shutdown().await.ok();
}
