//! A graceful stop: a service with slow handlers that serves until SIGINT or SIGTERM,
//! then lets the handlers in flight finish before it exits.
//!
//! `cargo run -p ruststream-examples --example graceful`, then Ctrl-C (or
//! `kill -TERM <pid>`).
//!
//! Once started, the service publishes itself twenty jobs; three workers take 300 ms per
//! job. On the signal, intake stops (the jobs not yet started stay with the broker), each
//! job in flight prints that it finished, the broker closes, and the service prints
//! `stopped cleanly`. `tests/graceful_sigterm.rs` runs this binary and checks exactly that.

use std::time::Duration;

use ruststream::BoxError;
use ruststream::memory::MemoryBroker;
use ruststream::runtime::{App, Producer, Router, SubscriberDef, handler_fn};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    id: u32,
}

const JOBS: u32 = 20;

async fn work(job: Job) {
    println!("job {} started", job.id);
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("job {} finished", job.id);
}

/// The service on `broker`, without its client: what its AsyncAPI document shows.
pub(crate) fn app(broker: MemoryBroker) -> App {
    App::new("graceful")
        .shutdown_timeout(Duration::from_secs(10))
        .broker(
            broker,
            Router::new().subscriber(
                SubscriberDef::new("jobs", handler_fn(work))
                    .name("work")
                    .workers(3),
            ),
        )
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let broker = MemoryBroker::new();
    let producer = Producer::new(broker.clone());
    let app = app(broker)
        .after_startup(move || async move {
            for id in 0..JOBS {
                producer.publish("jobs", &Job { id }).await?;
            }
            println!("serving {JOBS} jobs on 3 workers; stop with Ctrl-C or SIGTERM");
            Ok::<_, BoxError>(())
        })
        .on_shutdown(|| async {
            println!("shutting down: waiting for the jobs in flight");
            Ok::<_, BoxError>(())
        });
    app.run().await?;
    println!("stopped cleanly");
    Ok(())
}
