//! Notifications over Redis Pub/Sub: a channel and a glob pattern, at most once.
//!
//! Needs Redis on 127.0.0.1:6379 (`redis-server --port 6379`):
//! `cargo run -p ruststream-examples --example redis_pubsub`

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ruststream::runtime::{App, Router};
use ruststream::{OutgoingMessage, Publisher, subscriber};
use ruststream_redis::{Config, RedisBroker, RedisSource};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Notice {
    text: String,
}

static SEEN: AtomicU32 = AtomicU32::new(0);

/// By name: a Pub/Sub channel.
#[subscriber("notices.eu")]
async fn europe(notice: Notice) {
    println!("eu: {}", notice.text);
    SEEN.fetch_add(1, Ordering::SeqCst);
}

/// Every channel matching the glob `notices.*`.
#[subscriber(RedisSource::pattern("notices.*"))]
async fn audit(notice: Notice) {
    println!("audit: {}", notice.text);
    SEEN.fetch_add(1, Ordering::SeqCst);
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let broker = RedisBroker::new(Config::new("redis://127.0.0.1:6379"));
    let app = App::new("notices")
        .broker(
            broker.clone(),
            Router::new().subscriber(europe).subscriber(audit),
        )
        .start()
        .await
        .map_err(|e| format!("{e} (is redis-server running on 127.0.0.1:6379?)"))?;

    for (channel, text) in [
        ("notices.eu", "maintenance at 22:00"),
        ("notices.us", "new region"),
    ] {
        let body = serde_json::to_vec(&Notice { text: text.into() })?;
        broker.publish(OutgoingMessage::new(channel, &body)).await?;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while SEEN.load(Ordering::SeqCst) < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("{} deliveries", SEEN.load(Ordering::SeqCst));
    app.shutdown().await?;
    Ok(())
}
