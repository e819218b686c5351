//! Concurrency per subscriber: `workers(n)` and `workers_by_key(n)`, on the embedded
//! memory broker.
//!
//! `cargo run -p ruststream-examples --example workers`
//!
//! - `thumbnails` handles up to 4 images at once (`workers(4)`): twelve 50 ms jobs take
//!   about three rounds, and never more than 4 run together.
//! - `ledger` keeps each account's events in order on 4 lanes (`workers_by_key(4)`): events
//!   are published with the account as partition key, so one account's events are handled
//!   one after another while different accounts run side by side.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ruststream::BoxError;
use ruststream::memory::MemoryBroker;
use ruststream::runtime::{App, Producer, Router, State, SubscriberDef, handler_fn};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

#[derive(Debug, Serialize, Deserialize)]
struct Thumbnail {
    image: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    account: String,
    seq: u32,
    amount: i64,
}

const IMAGES: usize = 12;
const ACCOUNTS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];
const ENTRIES_PER_ACCOUNT: u32 = 4;

#[derive(Default)]
struct Stats {
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    images_done: AtomicUsize,
    /// Per account: the sequence numbers in the order handled, and the balance.
    ledger: Mutex<HashMap<String, (Vec<u32>, i64)>>,
    entries_done: AtomicUsize,
    all_done: Notify,
}

impl Stats {
    fn check_done(&self) {
        let entries = ACCOUNTS.len() * ENTRIES_PER_ACCOUNT as usize;
        if self.images_done.load(Ordering::SeqCst) == IMAGES
            && self.entries_done.load(Ordering::SeqCst) == entries
        {
            self.all_done.notify_one();
        }
    }
}

async fn make_thumbnail(job: Thumbnail, stats: State<Stats>) {
    let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
    println!("thumbnail {:>2}: started ({now} running)", job.image);
    tokio::time::sleep(Duration::from_millis(50)).await;
    stats.in_flight.fetch_sub(1, Ordering::SeqCst);
    stats.images_done.fetch_add(1, Ordering::SeqCst);
    stats.check_done();
}

async fn post_entry(entry: Entry, stats: State<Stats>) {
    // A little work whose length varies, so lanes finish out of step.
    tokio::time::sleep(Duration::from_millis(u64::from(entry.seq % 3) * 5)).await;
    let balance = {
        let mut ledger = stats.ledger.lock().unwrap();
        let (seqs, balance) = ledger.entry(entry.account.clone()).or_default();
        seqs.push(entry.seq);
        *balance += entry.amount;
        *balance
    };
    println!(
        "ledger: {:<5} entry {} ({:+}) -> balance {balance}",
        entry.account, entry.seq, entry.amount
    );
    stats.entries_done.fetch_add(1, Ordering::SeqCst);
    stats.check_done();
}

/// The service on `broker`, without its state: what its AsyncAPI document shows.
pub(crate) fn app(broker: MemoryBroker) -> App {
    let router = Router::new()
        .subscriber(
            SubscriberDef::new("images.uploaded", handler_fn(make_thumbnail))
                .name("thumbnails")
                .workers(4),
        )
        .subscriber(
            SubscriberDef::new("ledger.entries", handler_fn(post_entry))
                .name("ledger")
                .workers_by_key(4),
        );
    App::new("workers").broker(broker, router)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let broker = MemoryBroker::new();
    let stats = Arc::new(Stats::default());
    let running = app(broker.clone())
        .state_arc(Arc::clone(&stats))
        .start()
        .await?;

    let started = Instant::now();
    let producer = Producer::new(broker);
    for image in 0..IMAGES as u32 {
        producer
            .publish("images.uploaded", &Thumbnail { image })
            .await?;
    }
    for seq in 1..=ENTRIES_PER_ACCOUNT {
        for (index, account) in ACCOUNTS.iter().enumerate() {
            let amount = if seq % 2 == 0 { -10 } else { 25 } * (index as i64 + 1);
            let entry = Entry {
                account: (*account).to_owned(),
                seq,
                amount,
            };
            producer
                .message("ledger.entries", &entry)
                .key(account.as_bytes())
                .send()
                .await?;
        }
    }

    if tokio::time::timeout(Duration::from_secs(5), stats.all_done.notified())
        .await
        .is_err()
    {
        println!("not everything was handled in time");
    }
    println!(
        "{IMAGES} thumbnails in {:?}, at most {} at once",
        started.elapsed(),
        stats.max_in_flight.load(Ordering::SeqCst)
    );
    for (account, (seqs, balance)) in stats.ledger.lock().unwrap().iter() {
        let in_order = seqs.windows(2).all(|pair| pair[0] < pair[1]);
        println!("{account:<5}: entries {seqs:?} in order: {in_order}, balance {balance}");
    }
    running.shutdown().await?;
    println!("stopped cleanly");
    Ok(())
}
