//! A consuming service killed with SIGKILL loses nothing: the messages it held unacked
//! come back to the queue, flagged redelivered. The service is this test binary run
//! again as a child process (the ignored test `consuming_service_child`), on the shared
//! server with a fresh queue.

mod support;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use ruststream::SubscriptionSource;
use ruststream::kit::live::fresh_name;
use ruststream::runtime::{App, Router, SubscriberDef, handler_fn};
use ruststream::{Broker, IncomingMessage, OutgoingMessage, Publisher, SubscriberExt};
use ruststream_rabbitmq::{Config, RabbitBroker, RabbitQueue};
use tokio::io::{AsyncBufReadExt, BufReader};

const ORDERS: u64 = 100;
const URL_VAR: &str = "RUSTSTREAM_CRASH_TEST_URL";
const QUEUE_VAR: &str = "RUSTSTREAM_CRASH_TEST_QUEUE";

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Order {
    id: u64,
}

fn queue(name: &str) -> RabbitQueue {
    RabbitQueue::new(name).prefetch(2 * ORDERS as u16)
}

/// The service: handles even orders, and holds odd ones forever (never settled), saying
/// on stdout which orders it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of a_sigkilled_service_loses_no_message"]
async fn consuming_service_child() {
    let (Ok(url), Ok(name)) = (std::env::var(URL_VAR), std::env::var(QUEUE_VAR)) else {
        return;
    };
    let handler = handler_fn(|order: Order| async move {
        println!("GOT {}", order.id);
        if order.id % 2 == 1 {
            std::future::pending::<()>().await;
        }
    });
    let router = Router::new()
        .subscriber(SubscriberDef::new(queue(&name), handler).workers(2 * ORDERS as usize));
    App::new("crash-child")
        .broker(RabbitBroker::new(Config::new(url)), router)
        .run_until(std::future::pending())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_service_loses_no_message() {
    let test = "a_sigkilled_service_loses_no_message";
    let Some(url) = support::shared_server(test).await else {
        return;
    };
    let name = fresh_name("rs_crash");
    let broker = RabbitBroker::new(Config::new(&url));
    broker.connect().await.unwrap();
    broker.declare_queue(&queue(&name)).await.unwrap();
    let _clean = ruststream::kit::live::CleanUp::new({
        let (url, name) = (url.clone(), name.clone());
        move || async move {
            let broker = RabbitBroker::new(Config::new(&url));
            if broker.connect().await.is_ok() {
                let _ = broker.delete_queue(&name).await;
                let _ = broker.shutdown().await;
            }
        }
    });
    for id in 0..ORDERS {
        let payload = serde_json::to_vec(&Order { id }).unwrap();
        broker
            .publish(OutgoingMessage::new(&name, &payload))
            .await
            .unwrap();
    }

    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "consuming_service_child",
            "--ignored",
            "--nocapture",
        ])
        .env(URL_VAR, &url)
        .env(QUEUE_VAR, &name)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the service starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut handled = BTreeSet::new();
    let every_order_in_hand = async {
        while handled.len() < ORDERS as usize {
            let line = lines.next_line().await.unwrap().expect("the service runs");
            if let Some(id) = line.strip_prefix("GOT ") {
                handled.insert(id.parse::<u64>().unwrap());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), every_order_in_hand)
        .await
        .expect("the service has every order within 30 s");

    child.start_kill().unwrap();
    child.wait().await.unwrap();

    // Every odd order was in hand, unsettled: each must come back. Even ones were
    // handled; one whose ack had not reached the server comes back too.
    let mut subscriber = queue(&name).subscribe(&broker).await.unwrap();
    let mut back = BTreeSet::new();
    let odd: BTreeSet<u64> = (0..ORDERS).filter(|id| id % 2 == 1).collect();
    while !odd.is_subset(&back) {
        let message = tokio::time::timeout(Duration::from_secs(10), subscriber.next_message())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "missing after the crash: {:?}",
                    odd.difference(&back).collect::<Vec<_>>()
                )
            })
            .unwrap()
            .unwrap();
        assert!(
            message.redelivered(),
            "a message held by the killed service is flagged redelivered"
        );
        let order: Order = serde_json::from_slice(message.payload()).unwrap();
        back.insert(order.id);
        message.ack().await.unwrap();
    }
    let lost: Vec<u64> = (0..ORDERS)
        .filter(|id| !(back.contains(id) || id % 2 == 0 && handled.contains(id)))
        .collect();
    assert!(lost.is_empty(), "lost: {lost:?}");
    eprintln!(
        "{} orders came back after the SIGKILL ({} even ones whose ack was lost)",
        back.len(),
        back.len() - odd.len()
    );
    broker.shutdown().await.unwrap();
}
