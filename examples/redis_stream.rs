//! An order ledger on a Redis stream with a consumer group: `XREADGROUP`, `XACK` on ack,
//! a delayed retry that leaves the entry pending until it is claimed again, the delivery
//! count as the redelivery count, and `max_deliver` with a dead-letter stream.
//!
//! Needs Redis on 127.0.0.1:6379 (`redis-server --port 6379`):
//! `cargo run -p ruststream-examples --example redis_stream`

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ruststream::runtime::{App, Message, Router, Settle};
use ruststream::{Headers, OutgoingMessage, Publisher, subscriber};
use ruststream_redis::{Config, RedisBroker, RedisSource};
use serde::{Deserialize, Serialize};

const STREAM: &str = "example:orders";

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: u64,
}

static RECORDED: AtomicU32 = AtomicU32::new(0);

#[subscriber(
    RedisSource::stream(STREAM)
        .group("ledger")
        .claim_idle(Duration::from_secs(5))
        .max_deliver(5)
        .dead_letter("example:orders:dead")
)]
async fn record(message: Message<'_>) -> Settle {
    let Ok(order) = serde_json::from_slice::<Order>(message.payload()) else {
        return Settle::Drop;
    };
    let redelivered = message.redelivery_count().unwrap_or(0);
    if order.id == 2 && redelivered == 0 {
        println!("order 2: not yet, claimed again in 500 ms (left pending)");
        return Settle::RetryAfter(Duration::from_millis(500));
    }
    let tenant = message.headers().get_str("tenant").unwrap_or("-");
    println!(
        "recorded order {} for {tenant} (delivery {})",
        order.id,
        redelivered + 1
    );
    RECORDED.fetch_add(1, Ordering::SeqCst);
    Settle::Ack
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let broker = RedisBroker::new(Config::new("redis://127.0.0.1:6379"));
    let app = App::new("ledger")
        .broker(broker.clone(), Router::new().subscriber(record))
        .start()
        .await
        .map_err(|e| format!("{e} (is redis-server running on 127.0.0.1:6379?)"))?;

    // Headers travel as stream fields; the stream keeps about 10 000 entries.
    let orders = broker.streams().maxlen(10_000);
    let headers: Headers = [("tenant", "eu")].into_iter().collect();
    for id in 1..=3u64 {
        let body = serde_json::to_vec(&Order { id })?;
        orders
            .publish(OutgoingMessage::new(STREAM, &body).with_headers(&headers))
            .await?;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while RECORDED.load(Ordering::SeqCst) < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("{} orders recorded", RECORDED.load(Ordering::SeqCst));
    app.shutdown().await?;
    delete_keys(&["example:orders", "example:orders:dead"]).await?;
    Ok(())
}

/// Leaves nothing behind: the example's keys (and the `{..}` keys of its bookkeeping).
async fn delete_keys(keys: &[&str]) -> Result<(), Box<dyn std::error::Error>> {
    let client = redis::Client::open("redis://127.0.0.1:6379")?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    for pattern in keys {
        let found: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut connection)
            .await?;
        if !found.is_empty() {
            let _: i64 = redis::cmd("DEL")
                .arg(found)
                .query_async(&mut connection)
                .await?;
        }
    }
    Ok(())
}
