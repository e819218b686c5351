//! Request-reply on the embedded memory broker: a handler's returned value answers the
//! request, with the correlation id carried over, and is also published to a declared
//! destination.
//!
//! `cargo run -p ruststream-examples --example request_reply`
//!
//! - `quote` answers `pricing.quote` requests (`Respond(Quote)`) and, through
//!   `publish_to("pricing.quoted")`, tells an audit handler about every quote.
//! - The client side uses a `Producer`: `message(..).correlation_id(..).request(timeout)`.
//! - A request nobody answers fails at once; one answered too late times out.

use std::sync::Arc;
use std::time::Duration;

use ruststream::BoxError;
use ruststream::memory::MemoryBroker;
use ruststream::runtime::{
    App, FromMessage, Message, Producer, Rejection, Respond, Router, State, SubscriberDef,
    handler_fn,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

#[derive(Debug, Serialize, Deserialize)]
struct QuoteRequest {
    item: String,
    quantity: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Quote {
    item: String,
    total: f64,
}

/// The `correlation-id` of a message, if any: a custom extractor.
struct CorrelationId(Option<String>);

impl<'a> FromMessage<'a> for CorrelationId {
    fn from_message(message: &Message<'a>) -> Result<Self, Rejection> {
        Ok(CorrelationId(message.correlation_id().map(str::to_owned)))
    }
}

/// Lets `main` wait for the audit of each quote.
#[derive(Default)]
struct Audited {
    quote: Notify,
}

fn price_of(item: &str) -> f64 {
    match item {
        "coffee" => 3.5,
        "bagel" => 2.25,
        _ => 10.0,
    }
}

async fn quote(request: QuoteRequest, CorrelationId(id): CorrelationId) -> Respond<Quote> {
    println!(
        "quote: {} x {} (correlation id {})",
        request.quantity,
        request.item,
        id.as_deref().unwrap_or("none")
    );
    Respond(Quote {
        total: price_of(&request.item) * f64::from(request.quantity),
        item: request.item,
    })
}

async fn audit(quote: Quote, CorrelationId(id): CorrelationId, audited: State<Audited>) {
    println!(
        "audit: quoted {:.2} for {} (correlation id {})",
        quote.total,
        quote.item,
        id.as_deref().unwrap_or("none")
    );
    audited.quote.notify_one();
}

async fn slow(_: QuoteRequest) -> Respond<Quote> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    Respond(Quote {
        item: "late".into(),
        total: 0.0,
    })
}

/// The service on `broker`, without its state: what its AsyncAPI document shows.
pub(crate) fn app(broker: MemoryBroker) -> App {
    let router = Router::with_prefix("pricing.")
        .subscriber(
            SubscriberDef::new("quote", handler_fn(quote))
                .name("quote")
                .publish_to("pricing.quoted"),
        )
        .subscriber(SubscriberDef::new("quoted", handler_fn(audit)).name("audit"))
        .subscriber(SubscriberDef::new("slow", handler_fn(slow)).name("slow"));
    App::new("pricing").broker(broker, router)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let broker = MemoryBroker::new();
    let audited = Arc::new(Audited::default());
    let running = app(broker.clone())
        .state_arc(Arc::clone(&audited))
        .start()
        .await?;

    let client = Producer::new(broker);
    for (n, (item, quantity)) in [("coffee", 2), ("bagel", 12)].into_iter().enumerate() {
        let request = QuoteRequest {
            item: item.into(),
            quantity,
        };
        let quote: Quote = client
            .message("pricing.quote", &request)
            .correlation_id(format!("order-{n}"))
            .request(Duration::from_secs(1))
            .await?;
        println!("client: {} costs {:.2}", quote.item, quote.total);
        audited.quote.notified().await;
    }

    let nobody = QuoteRequest {
        item: "tea".into(),
        quantity: 1,
    };
    match client
        .message("pricing.nobody", &nobody)
        .request::<Quote>(Duration::from_secs(1))
        .await
    {
        Ok(quote) => println!("client: unexpected answer {quote:?}"),
        Err(error) => println!("client: {error}"),
    }
    match client
        .message("pricing.slow", &nobody)
        .request::<Quote>(Duration::from_millis(50))
        .await
    {
        Ok(quote) => println!("client: unexpected answer {quote:?}"),
        Err(error) => println!("client: {error}"),
    }

    running.shutdown().await?;
    println!("stopped cleanly");
    Ok(())
}
