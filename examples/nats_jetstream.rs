//! A payment ledger on JetStream: a durable pull consumer (created with its stream if
//! missing), acks confirmed by the server, delayed redelivery through a NAK with delay,
//! and publishes acknowledged by the stream with de-duplication by message id.
//!
//! Needs a NATS server with JetStream on 127.0.0.1:4222
//! (`nats-server -a 127.0.0.1 -p 4222 -js -sd /tmp/nats`):
//! `cargo run -p ruststream-examples --example nats_jetstream`

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ruststream::headers::MESSAGE_ID;
use ruststream::runtime::{App, Message, Router, Settle};
use ruststream::{Broker, Headers, OutgoingMessage, Publisher, subscriber};
use ruststream_nats::{Config, NatsBroker, NatsSource};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Payment {
    id: u64,
    amount: f64,
}

static SEEN: AtomicU32 = AtomicU32::new(0);

#[subscriber(
    NatsSource::new("ledger.payments")
        .stream("LEDGER_EXAMPLE")
        .durable("ledger")
        .ack_wait(Duration::from_secs(10))
)]
async fn record(message: Message<'_>) -> Settle {
    let Ok(payment) = serde_json::from_slice::<Payment>(message.payload()) else {
        return Settle::Drop;
    };
    let redelivered = message.redelivery_count().unwrap_or(0);
    if payment.id == 2 && redelivered == 0 {
        println!("payment 2: not yet, again in 500 ms (JetStream NAK with delay)");
        return Settle::RetryAfter(Duration::from_millis(500));
    }
    println!(
        "recorded payment {} (delivery {})",
        payment.id,
        redelivered + 1
    );
    SEEN.fetch_add(1, Ordering::SeqCst);
    Settle::Ack
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::new("nats://127.0.0.1:4222").name("nats-jetstream-example");
    let broker = NatsBroker::new(config);
    let app = App::new("ledger")
        .broker(broker.clone(), Router::new().subscriber(record))
        .start()
        .await
        .map_err(|e| format!("{e} (is nats-server -js running on 127.0.0.1:4222?)"))?;

    let publisher = broker.jetstream_publisher();
    for id in 1..=3u64 {
        let body = serde_json::to_vec(&Payment { id, amount: 9.5 })?;
        // The same id twice: the stream stores it once.
        let headers: Headers = [(MESSAGE_ID, format!("payment-{id}"))]
            .into_iter()
            .collect();
        for _ in 0..2 {
            publisher
                .publish(OutgoingMessage::new("ledger.payments", &body).with_headers(&headers))
                .await?;
        }
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while SEEN.load(Ordering::SeqCst) < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("{} payments recorded", SEEN.load(Ordering::SeqCst));
    app.shutdown().await?;

    // Leave nothing behind: the example's stream (and its consumer).
    let cleanup = NatsBroker::new(Config::new("nats://127.0.0.1:4222"));
    cleanup.connect().await?;
    cleanup.jetstream()?.delete_stream("LEDGER_EXAMPLE").await?;
    cleanup.shutdown().await?;
    Ok(())
}
