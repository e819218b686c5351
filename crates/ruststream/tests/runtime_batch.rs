//! Batch handlers on a `BatchSubscriber` broker: per-element settlement.
#![cfg(feature = "testing")]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ruststream::memory::MemoryBroker;
use ruststream::prelude::*;
use ruststream::runtime::{
    App, FailurePolicy, Producer, Router, Settle, SubscriberDef, batch_handler_fn,
};
use serde::{Deserialize, Serialize};
use support::{dead_letter_reason, eventually, next_within};

#[derive(Debug, Serialize, Deserialize, Clone, Copy, PartialEq)]
struct Reading {
    id: u32,
}

#[tokio::test]
async fn each_element_of_a_batch_is_settled_on_its_own() {
    let broker = MemoryBroker::new();
    let batches: Arc<Mutex<Vec<Vec<u32>>>> = Arc::default();
    let seen = Arc::clone(&batches);
    let handler = batch_handler_fn(move |readings: Vec<Reading>| {
        let seen = Arc::clone(&seen);
        async move {
            let ids: Vec<u32> = readings.iter().map(|r| r.id).collect();
            let first_time = !seen.lock().unwrap().iter().flatten().any(|id| *id == 7);
            seen.lock().unwrap().push(ids);
            // Reading 7 is retried once; everything else is acked.
            readings
                .iter()
                .map(|r| {
                    if r.id == 7 && first_time {
                        Settle::Retry
                    } else {
                        Settle::Ack
                    }
                })
                .collect::<Vec<_>>()
        }
    });
    let subscriber = SubscriberDef::batch("readings", handler)
        .max_messages(10)
        .max_wait(Duration::from_millis(20));
    let running = App::new("batches")
        .broker(broker.clone(), Router::new().subscriber(subscriber))
        .start()
        .await
        .unwrap();
    let producer = Producer::new(broker.clone());
    for id in 0..25 {
        producer.publish("readings", &Reading { id }).await.unwrap();
    }
    eventually("26 readings handled (one of them twice)", || {
        batches.lock().unwrap().iter().map(Vec::len).sum::<usize>() == 26
    })
    .await;
    eventually("an empty backlog", || broker.backlog() == 0).await;
    let batches = batches.lock().unwrap().clone();
    assert!(
        batches.iter().all(|b| (1..=10).contains(&b.len())),
        "{batches:?}"
    );
    let sevens = batches.iter().flatten().filter(|id| **id == 7).count();
    assert_eq!(
        sevens, 2,
        "the retried element alone came back: {batches:?}"
    );
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_undecodable_element_is_dead_lettered_alone() {
    let broker = MemoryBroker::new();
    let handled: Arc<Mutex<Vec<u32>>> = Arc::default();
    let seen = Arc::clone(&handled);
    let handler = batch_handler_fn(move |readings: Vec<Reading>| {
        let seen = Arc::clone(&seen);
        async move {
            seen.lock().unwrap().extend(readings.iter().map(|r| r.id));
        }
    });
    let subscriber = SubscriberDef::batch("mixed", handler)
        .max_wait(Duration::from_millis(20))
        .dead_letter("mixed.dead");
    let running = App::new("batches")
        .broker(broker.clone(), Router::new().subscriber(subscriber))
        .start()
        .await
        .unwrap();
    let mut dead = broker.subscribe("mixed.dead").await.unwrap();
    broker
        .publish(OutgoingMessage::new("mixed", br#"{"id":1}"#))
        .await
        .unwrap();
    broker
        .publish(OutgoingMessage::new("mixed", b"not json"))
        .await
        .unwrap();
    broker
        .publish(OutgoingMessage::new("mixed", br#"{"id":3}"#))
        .await
        .unwrap();
    let letter = next_within(&mut dead).await;
    assert_eq!(letter.payload(), b"not json");
    eventually("the two decodable readings handled", || {
        handled.lock().unwrap().len() == 2
    })
    .await;
    assert_eq!(*handled.lock().unwrap(), [1, 3]);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failed_batch_fails_every_element_into_the_error_policy() {
    let broker = MemoryBroker::new();
    let calls = Arc::new(Mutex::new(0u32));
    let counter = Arc::clone(&calls);
    let handler = batch_handler_fn(move |_: Vec<Reading>| {
        let counter = Arc::clone(&counter);
        async move {
            *counter.lock().unwrap() += 1;
            Err::<(), _>("storage unavailable")
        }
    });
    let subscriber = SubscriberDef::batch("failing", handler)
        .max_wait(Duration::from_millis(20))
        .on_error(FailurePolicy::Retry)
        .max_attempts(2)
        .dead_letter("failing.dead");
    let running = App::new("batches")
        .broker(broker.clone(), Router::new().subscriber(subscriber))
        .start()
        .await
        .unwrap();
    let mut dead = broker.subscribe("failing.dead").await.unwrap();
    let producer = Producer::new(broker.clone());
    producer
        .publish("failing", &Reading { id: 1 })
        .await
        .unwrap();
    producer
        .publish("failing", &Reading { id: 2 })
        .await
        .unwrap();
    for _ in 0..2 {
        let letter = next_within(&mut dead).await;
        let reason = dead_letter_reason(&letter);
        assert!(reason.contains("storage unavailable"), "{reason}");
    }
    running.shutdown().await.unwrap();
}
