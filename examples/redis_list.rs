//! A job queue on a Redis list: each job goes to one worker, moved into the worker's
//! in-flight list until it is acked; a failed job is retried later through the list's
//! sorted set of due jobs, which survives a crash of the worker.
//!
//! Needs Redis on 127.0.0.1:6379 (`redis-server --port 6379`):
//! `cargo run -p ruststream-examples --example redis_list`

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ruststream::runtime::{App, Router, Settle};
use ruststream::{Broker, OutgoingMessage, Publisher, subscriber};
use ruststream_redis::{Config, RedisBroker, RedisSource};
use serde::{Deserialize, Serialize};

const QUEUE: &str = "example:jobs";

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    id: u64,
}

static DONE: AtomicU32 = AtomicU32::new(0);
static TRIED: AtomicU32 = AtomicU32::new(0);

#[subscriber(RedisSource::list(QUEUE).visibility_timeout(Duration::from_secs(10)))]
async fn work(job: Job) -> Settle {
    if job.id == 2 && TRIED.fetch_add(1, Ordering::SeqCst) == 0 {
        println!("job 2: not yet, again in 300 ms (a sorted set of due jobs)");
        return Settle::RetryAfter(Duration::from_millis(300));
    }
    println!("done job {}", job.id);
    DONE.fetch_add(1, Ordering::SeqCst);
    Settle::Ack
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let broker = RedisBroker::new(Config::new("redis://127.0.0.1:6379"));
    let app = App::new("jobs")
        .broker(broker.clone(), Router::new().subscriber(work))
        .start()
        .await
        .map_err(|e| format!("{e} (is redis-server running on 127.0.0.1:6379?)"))?;

    let queue = broker.lists();
    for id in 1..=3u64 {
        let body = serde_json::to_vec(&Job { id })?;
        queue.publish(OutgoingMessage::new(QUEUE, &body)).await?;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while DONE.load(Ordering::SeqCst) < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("{} jobs done", DONE.load(Ordering::SeqCst));
    app.shutdown().await?;
    delete_keys(&["example:jobs", "{example:jobs}:*"]).await?;
    broker.shutdown().await?;
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
