//! Request-reply and declared destinations: a handler's returned value answers a request
//! (correlation id carried over) and is published to each `publish_to` destination.
#![cfg(feature = "testing")]

mod support;

use std::time::Duration;

use ruststream::headers::{CONTENT_TYPE, CORRELATION_ID};
use ruststream::matching::DotSubjects;
use ruststream::memory::MemoryBroker;
use ruststream::runtime::{
    App, FailurePolicy, Message, Respond, Router, Settlement, SubscriberDef, handler_fn,
};
use ruststream::testing::{Ended, TestApp, TestBroker, TestClient};
use ruststream::{Headers, OutgoingMessage, RequestReply};
use serde::{Deserialize, Serialize};
use support::inspect;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Order {
    id: u64,
    amount: f64,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Quote {
    id: u64,
    price: f64,
}

const TIMEOUT: Duration = Duration::from_secs(5);

fn quote() -> impl ruststream::runtime::Handler {
    handler_fn(|order: Order| async move {
        Respond(Quote {
            id: order.id,
            price: order.amount * 1.2,
        })
    })
}

fn quoting_app<B: TestBroker>(
    broker: &B,
    subscriber: SubscriberDef<&'static str, impl ruststream::runtime::Handler>,
) -> App {
    let router = Router::new()
        .subscriber(subscriber.name("quote"))
        .subscriber(
            SubscriberDef::new(
                "quotes.>",
                inspect(|_: &Message<'_>| ruststream::runtime::Settle::Ack),
            )
            .name("quotes"),
        );
    App::new("quotes").broker(broker.clone(), router)
}

async fn a_handler_answers_a_request<B: TestBroker + RequestReply>(broker: B) {
    let app = TestApp::start(
        quoting_app(&broker, SubscriberDef::new("pricing", quote())),
        broker,
    )
    .await
    .unwrap();
    let reply: Quote = app
        .request(
            "pricing",
            &Order {
                id: 7,
                amount: 10.0,
            },
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(reply, Quote { id: 7, price: 12.0 });
    assert_eq!(app.settlements("quote"), [Settlement::Acked]);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_handler_answers_a_request_on_the_memory_broker() {
    a_handler_answers_a_request(MemoryBroker::new()).await;
}

#[tokio::test]
async fn a_handler_answers_a_request_on_a_test_client() {
    a_handler_answers_a_request(TestClient::new(DotSubjects)).await;
}

#[tokio::test]
async fn the_correlation_id_is_carried_to_the_reply() {
    let broker = MemoryBroker::new();
    let app = TestApp::start(
        quoting_app(&broker, SubscriberDef::new("pricing", quote())),
        broker.clone(),
    )
    .await
    .unwrap();
    let headers: Headers = [(CORRELATION_ID, "order-7-quote")].into_iter().collect();
    let body = serde_json::to_vec(&Order { id: 7, amount: 5.0 }).unwrap();
    let reply = broker
        .request(
            OutgoingMessage::new("pricing", &body).with_headers(&headers),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(reply.headers.get_str(CORRELATION_ID), Some("order-7-quote"));
    assert_eq!(
        reply.headers.get_str(CONTENT_TYPE),
        Some("application/json")
    );
    let quote: Quote = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(quote, Quote { id: 7, price: 6.0 });
    app.settled().await.unwrap();
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn publish_to_sends_the_returned_value_to_each_declared_destination() {
    let broker = MemoryBroker::new();
    let pricing = SubscriberDef::new("pricing", quote())
        .publish_to("quotes.eu")
        .publish_to("quotes.audit");
    let app = TestApp::start(quoting_app(&broker, pricing), broker)
        .await
        .unwrap();
    let headers: Headers = [(CORRELATION_ID, "c-1")].into_iter().collect();
    let body = serde_json::to_vec(&Order {
        id: 1,
        amount: 100.0,
    })
    .unwrap();
    app.publish_raw("pricing", body, headers).await.unwrap();

    for destination in ["quotes.eu", "quotes.audit"] {
        let published = app.published(destination);
        assert_eq!(published.len(), 1, "{destination}");
        assert_eq!(
            published[0].decoded::<Quote>(),
            Quote {
                id: 1,
                price: 120.0
            }
        );
    }
    let downstream = app.received("quotes");
    assert_eq!(downstream.len(), 2);
    for received in downstream {
        assert_eq!(received.header(CORRELATION_ID), Some("c-1"), "carried over");
        assert_eq!(received.header(CONTENT_TYPE), Some("application/json"));
    }
    assert_eq!(app.settlements("quote"), [Settlement::Acked]);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_request_is_answered_and_published_to_the_declared_destinations_too() {
    let broker = MemoryBroker::new();
    let pricing = SubscriberDef::new("pricing", quote()).publish_to("quotes.eu");
    let app = TestApp::start(quoting_app(&broker, pricing), broker)
        .await
        .unwrap();
    let reply: Quote = app
        .request("pricing", &Order { id: 2, amount: 1.0 }, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(reply, Quote { id: 2, price: 1.2 });
    assert_eq!(app.published("quotes.eu").len(), 1);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_value_without_reply_to_or_destination_is_acked_and_published_nowhere() {
    let broker = MemoryBroker::new();
    let app = TestApp::start(
        quoting_app(&broker, SubscriberDef::new("pricing", quote())),
        broker,
    )
    .await
    .unwrap();
    app.publish("pricing", &Order { id: 3, amount: 1.0 })
        .await
        .unwrap();
    assert_eq!(app.settlements("quote"), [Settlement::Acked]);
    assert!(app.received("quotes").is_empty());
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_reply_that_cannot_be_published_follows_the_error_policy() {
    let broker = MemoryBroker::new();
    // `quotes.*` is a pattern, not a name: the memory broker refuses to publish to it.
    let pricing = SubscriberDef::new("pricing", quote())
        .publish_to("quotes.*")
        .on_error(FailurePolicy::Drop);
    let app = TestApp::start(quoting_app(&broker, pricing), broker)
        .await
        .unwrap();
    app.publish("pricing", &Order { id: 4, amount: 1.0 })
        .await
        .unwrap();
    let published = app.published("quotes.*");
    assert_eq!(published.len(), 1);
    assert!(!published[0].is_ok(), "{published:?}");
    assert_eq!(app.received("quote")[0].ended, Some(Ended::Completed));
    assert_eq!(app.settlements("quote"), [Settlement::Rejected]);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_err_instead_of_a_reply_follows_the_error_policy() {
    let broker = MemoryBroker::new();
    let pricing = SubscriberDef::new(
        "pricing",
        handler_fn(|order: Order| async move {
            if order.amount < 0.0 {
                Err("a negative amount has no price")
            } else {
                Ok(Respond(Quote {
                    id: order.id,
                    price: order.amount,
                }))
            }
        }),
    )
    .publish_to("quotes.eu")
    .on_error(FailurePolicy::Drop);
    let app = TestApp::start(quoting_app(&broker, pricing), broker)
        .await
        .unwrap();
    app.publish(
        "pricing",
        &Order {
            id: 5,
            amount: -1.0,
        },
    )
    .await
    .unwrap();
    assert_eq!(app.settlements("quote"), [Settlement::Rejected]);
    assert!(app.published("quotes.eu").is_empty());
    app.shutdown().await.unwrap();
}
