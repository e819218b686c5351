//! Heap allocations per message on the memory broker's publish-to-consume path.
//!
//! `cargo bench -p ruststream --features memory --bench memory_allocations`
//!
//! Counts allocations with dhat over `M` and `2M` messages after a warm-up and prints
//! `(count at 2M - count at M) / M`: the steady-state allocations per message, with set-up
//! costs cancelled out.

use ruststream::memory::MemoryBroker;
use ruststream::prelude::*;

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

const BODY: &[u8] = br#"{"id":10000023,"name":"order-10000023","amount":123.25}"#;
const M: u64 = 100_000;

fn run(
    broker: &MemoryBroker,
    sub: &mut ruststream::memory::MemorySubscriber,
    rt: &tokio::runtime::Runtime,
    n: u64,
) -> u64 {
    let before = dhat::HeapStats::get().total_blocks;
    rt.block_on(async {
        let mut messages = std::pin::pin!(sub.stream());
        for _ in 0..n {
            broker
                .publish(OutgoingMessage::new("alloc.count", BODY))
                .await
                .expect("publish");
            let message = futures::StreamExt::next(&mut messages)
                .await
                .expect("open")
                .expect("message");
            std::hint::black_box(message.payload());
            message.ack().await.expect("ack");
        }
    });
    dhat::HeapStats::get().total_blocks - before
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let broker = MemoryBroker::new();
    let mut sub = rt.block_on(async {
        broker.connect().await.expect("connect");
        broker.subscribe("alloc.count").await.expect("subscribe")
    });
    run(&broker, &mut sub, &rt, 10_000);
    let at_m = run(&broker, &mut sub, &rt, M);
    let at_2m = run(&broker, &mut sub, &rt, 2 * M);
    let per_message = (at_2m - at_m) as f64 / M as f64;
    println!(
        "memory broker publish -> receive -> ack: {per_message:.3} allocations per message (M = {M}: {at_m} blocks, 2M: {at_2m} blocks)"
    );
}
