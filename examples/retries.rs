//! Failure policies, retries and the dead letter, on the embedded memory broker.
//!
//! `cargo run -p ruststream-examples --example retries`
//!
//! A payment service takes five payments:
//!
//! 1. a good one, acked on the first attempt;
//! 2. one whose gateway times out once: the handler returns an error, the error policy
//!    retries it with exponential backoff, and the second attempt succeeds;
//! 3. a declined card: the handler drops it for good (`Settle::Drop`);
//! 4. a poison payment that always fails: after `max_attempts(3)` it goes to the dead
//!    letter, with the reason in its headers;
//! 5. a payload that is not JSON at all: it never will decode, so it is dead-lettered at
//!    once, without retries.
//!
//! Then the service stops gracefully.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ruststream::memory::MemoryBroker;
use ruststream::runtime::{
    App, Backoff, DEAD_LETTER_HANDLER_HEADER, DEAD_LETTER_REASON_HEADER, FailurePolicy,
    FromMessage, Message, Producer, Rejection, Router, Settle, State, SubscriberDef, handler_fn,
};
use ruststream::{BoxError, OutgoingMessage, Publisher};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

#[derive(Debug, Serialize, Deserialize)]
struct Payment {
    id: u64,
    amount: f64,
    card: String,
}

/// This delivery's attempt number: a custom extractor (a handler argument read from the
/// message).
struct Attempt(u32);

impl<'a> FromMessage<'a> for Attempt {
    fn from_message(message: &Message<'a>) -> Result<Self, Rejection> {
        Ok(Attempt(message.attempt()))
    }
}

/// Why a message was dead-lettered, from the headers the runtime adds.
struct DeadLetter {
    reason: String,
    handler: String,
}

impl<'a> FromMessage<'a> for DeadLetter {
    fn from_message(message: &Message<'a>) -> Result<Self, Rejection> {
        let header = |name| message.headers().get_str(name).unwrap_or("?").to_owned();
        Ok(DeadLetter {
            reason: header(DEAD_LETTER_REASON_HEADER),
            handler: header(DEAD_LETTER_HANDLER_HEADER),
        })
    }
}

/// Counts payments that reached their final state; the example stops when all have.
#[derive(Default)]
struct Progress {
    done: AtomicU32,
    all_done: Notify,
}

const PAYMENTS: u32 = 5;

impl Progress {
    fn one_done(&self) {
        if self.done.fetch_add(1, Ordering::SeqCst) + 1 == PAYMENTS {
            self.all_done.notify_one();
        }
    }
}

/// Why a charge failed.
#[derive(Debug)]
enum PaymentError {
    GatewayTimeout,
    Poison,
}

impl std::fmt::Display for PaymentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PaymentError::GatewayTimeout => f.write_str("the payment gateway timed out"),
            PaymentError::Poison => f.write_str("this payment can never be processed"),
        }
    }
}

impl std::error::Error for PaymentError {}

async fn charge(
    payment: Payment,
    Attempt(attempt): Attempt,
    progress: State<Progress>,
) -> Result<Settle, PaymentError> {
    println!(
        "payment {} ({:.2} on card {}): attempt {attempt}",
        payment.id, payment.amount, payment.card
    );
    match payment.id {
        2 if attempt == 1 => return Err(PaymentError::GatewayTimeout),
        3 => {
            println!("payment 3: card declined, dropping it");
            progress.one_done();
            return Ok(Settle::Drop);
        }
        4 => return Err(PaymentError::Poison),
        _ => {}
    }
    println!("payment {}: charged", payment.id);
    progress.one_done();
    Ok(Settle::Ack)
}

/// The service on `broker`, without its state: what its AsyncAPI document shows.
pub(crate) fn app(broker: MemoryBroker) -> App {
    let payments = SubscriberDef::new("payments", handler_fn(charge))
        .name("charge")
        // A handler error: retry after 50 ms, then 100 ms... (±20 % jitter).
        .on_error(FailurePolicy::Backoff(Backoff::exponential(
            Duration::from_millis(50),
            Duration::from_secs(2),
        )))
        // After three attempts, give up: publish to the dead letter, then ack.
        .max_attempts(3)
        .dead_letter("payments.dead");
    let dead_letters = SubscriberDef::new(
        "payments.dead",
        handler_fn(|dead: DeadLetter, progress: State<Progress>| async move {
            println!("dead letter from `{}`: {}", dead.handler, dead.reason);
            progress.one_done();
        }),
    );
    App::new("payments").broker(
        broker,
        Router::new().subscriber(payments).subscriber(dead_letters),
    )
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let broker = MemoryBroker::new();
    let progress = Arc::new(Progress::default());
    let app = app(broker.clone()).state_arc(Arc::clone(&progress));
    let running = app.start().await?;

    let producer = Producer::new(broker.clone());
    for (id, amount) in [(1, 10.0), (2, 25.5), (3, 99.0), (4, 1.0)] {
        let card = format!("4000-0000-0000-000{id}");
        producer
            .publish("payments", &Payment { id, amount, card })
            .await?;
    }
    broker
        .publish(OutgoingMessage::new("payments", b"<payment id=5/>"))
        .await?;

    if tokio::time::timeout(Duration::from_secs(5), progress.all_done.notified())
        .await
        .is_err()
    {
        println!("not every payment settled in time");
    }
    running.shutdown().await?;
    println!("stopped cleanly");
    Ok(())
}
