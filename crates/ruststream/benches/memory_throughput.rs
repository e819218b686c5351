//! Publish-to-consume throughput of the memory broker.
//!
//! `cargo bench -p ruststream --features memory --bench memory_throughput`
//!
//! Scenarios (each iteration moves `BATCH` messages, reported as elements/s):
//! - `same_task`: publish one, receive it, ack it, in one task (the per-message path);
//! - `pipelined`: a publisher task and a consumer task on a 2-thread runtime, the queue
//!   between them bounded, the consumer acking each message;
//! - `fan_out_4`: one publish reaching four subscribers.
//!
//! The body is the small JSON order of SPEC §5.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use ruststream::memory::MemoryBroker;
use ruststream::prelude::*;

const BATCH: u64 = 10_000;
const BODY: &[u8] = br#"{"id":10000023,"name":"order-10000023","amount":123.25}"#;

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime")
}

fn same_task(c: &mut Criterion) {
    let rt = runtime(1);
    let broker = MemoryBroker::new();
    let mut sub = rt.block_on(async {
        broker.connect().await.expect("connect");
        broker.subscribe("bench.same").await.expect("subscribe")
    });
    let mut group = c.benchmark_group("memory");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("same_task", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut messages = std::pin::pin!(sub.stream());
                for _ in 0..BATCH {
                    broker
                        .publish(OutgoingMessage::new("bench.same", BODY))
                        .await
                        .expect("publish");
                    let message = messages.next().await.expect("open").expect("message");
                    black_box(message.payload());
                    message.ack().await.expect("ack");
                }
            });
        });
    });
    group.finish();
}

fn pipelined(c: &mut Criterion) {
    let rt = runtime(2);
    let broker = MemoryBroker::new();
    rt.block_on(broker.connect()).expect("connect");
    let mut group = c.benchmark_group("memory");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("pipelined", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut sub = broker.subscribe("bench.pipe").await.expect("subscribe");
                let consumer = tokio::spawn(async move {
                    let mut messages = std::pin::pin!(sub.stream());
                    for _ in 0..BATCH {
                        let message = messages.next().await.expect("open").expect("message");
                        black_box(message.payload());
                        message.ack().await.expect("ack");
                    }
                });
                for _ in 0..BATCH {
                    broker
                        .publish(OutgoingMessage::new("bench.pipe", BODY))
                        .await
                        .expect("publish");
                }
                consumer.await.expect("consumer");
            });
        });
    });
    group.finish();
}

fn fan_out(c: &mut Criterion) {
    let rt = runtime(1);
    let broker = MemoryBroker::new();
    let mut subs: Vec<_> = rt.block_on(async {
        broker.connect().await.expect("connect");
        let mut subs = Vec::new();
        for _ in 0..4 {
            subs.push(broker.subscribe("bench.fan").await.expect("subscribe"));
        }
        subs
    });
    let mut group = c.benchmark_group("memory");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("fan_out_4", |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..BATCH {
                    broker
                        .publish(OutgoingMessage::new("bench.fan", BODY))
                        .await
                        .expect("publish");
                    for sub in &mut subs {
                        let message = sub.next_message().await.expect("open").expect("message");
                        message.ack().await.expect("ack");
                    }
                }
            });
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = same_task, pipelined, fan_out
}
criterion_main!(benches);
