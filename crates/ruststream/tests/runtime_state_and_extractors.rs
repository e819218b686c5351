//! Handler arguments: shared state, and extractors that read the delivery (decoded
//! payload, `Raw`, `Text`, `&Headers`, `Message`, custom ones); a missing state or a
//! payload an extractor refuses rejects the message with a reason that names the fix.
#![cfg(feature = "testing")]

mod support;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ruststream::Headers;
use ruststream::headers::CORRELATION_ID;
use ruststream::memory::MemoryBroker;
use ruststream::runtime::{
    App, Format, FromMessage, Handler, IntoOutcome, Message, Outcome, Raw, Rejection, ReplyBuffer,
    Router, Settlement, State, SubscriberDef, Text, handler_fn,
};
use ruststream::testing::{Ended, TestApp};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Order {
    id: u64,
}

#[derive(Default)]
struct Totals {
    sum: AtomicU64,
}

async fn start(app: App, broker: MemoryBroker) -> TestApp<MemoryBroker> {
    TestApp::start(app, broker).await.unwrap()
}

#[tokio::test]
async fn state_is_shared_with_every_handler_and_readable_outside() {
    let broker = MemoryBroker::new();
    let totals = Arc::new(Totals::default());
    let add = |order: Order, totals: State<Totals>| async move {
        totals.sum.fetch_add(order.id, Ordering::SeqCst);
    };
    let router = Router::new()
        .subscriber(SubscriberDef::new("a", handler_fn(add)))
        .subscriber(SubscriberDef::new("b", handler_fn(add)));
    let app = App::new("state")
        .state_arc(Arc::clone(&totals))
        .state(String::from("a second state of another type"))
        .broker(broker.clone(), router);
    let app = start(app, broker).await;
    app.publish("a", &Order { id: 2 }).await.unwrap();
    app.publish("b", &Order { id: 40 }).await.unwrap();
    assert_eq!(totals.sum.load(Ordering::SeqCst), 42);
    app.shutdown().await.unwrap();
}

struct NotRegistered;

#[tokio::test]
async fn a_missing_state_rejects_the_message_and_names_the_fix() {
    let broker = MemoryBroker::new();
    let router = Router::new().subscriber(
        SubscriberDef::new(
            "orders",
            handler_fn(|_: Order, _: State<NotRegistered>| async {}),
        )
        .name("orders"),
    );
    let app = start(App::new("missing").broker(broker.clone(), router), broker).await;
    app.publish("orders", &Order { id: 1 }).await.unwrap();
    let received = &app.received("orders")[0];
    let Some(Ended::Rejected(reason)) = &received.ended else {
        panic!("{received:?}");
    };
    let expected = Rejection::MissingState(std::any::type_name::<NotRegistered>()).to_string();
    assert_eq!(*reason, expected);
    assert!(reason.contains("App::state"), "names the fix: {reason}");
    assert_eq!(app.settlements("orders"), [Settlement::Rejected]);
    app.shutdown().await.unwrap();
}

/// What the borrowing handler saw.
#[derive(Debug, Default, Clone, PartialEq)]
struct Seen {
    raw: Vec<u8>,
    text: String,
    tenant_header: Option<String>,
    name: Option<String>,
    handler: String,
    destination: String,
    attempt: u32,
    correlation_id: Option<String>,
    format: Option<Format>,
    decoded: Option<u64>,
}

/// A handler written by hand, as `#[subscriber]` writes them, so its arguments can
/// borrow from the delivery: `Raw`, `Text`, `&Headers` and `Message` copy nothing.
struct Borrowing(Arc<Mutex<Seen>>);

impl Handler for Borrowing {
    fn call<'a>(
        &'a self,
        message: Message<'a>,
        reply: &'a mut ReplyBuffer,
    ) -> impl Future<Output = Outcome> + Send + 'a {
        let extracted = (|| {
            Ok::<_, Rejection>((
                Raw::from_message(&message)?,
                Text::from_message(&message)?,
                <&Headers>::from_message(&message)?,
                Message::from_message(&message)?,
                Order::from_message(&message)?,
            ))
        })();
        async move {
            let (raw, text, headers, whole, order) = match extracted {
                Ok(arguments) => arguments,
                Err(rejection) => return Outcome::rejected(rejection),
            };
            *self.0.lock().unwrap() = Seen {
                raw: raw.to_vec(),
                text: text.to_string(),
                tenant_header: headers.get_str("tenant").map(str::to_owned),
                name: whole.name().map(str::to_owned),
                handler: whole.handler().to_owned(),
                destination: whole.destination().to_owned(),
                attempt: whole.attempt(),
                correlation_id: whole.correlation_id().map(str::to_owned),
                format: Some(whole.format()),
                decoded: Some(order.id),
            };
            ().into_outcome(reply)
        }
    }
}

#[tokio::test]
async fn borrowed_extractors_read_the_delivery() {
    let broker = MemoryBroker::new();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let router = Router::with_prefix("shop.")
        .subscriber(SubscriberDef::new("orders.*", Borrowing(Arc::clone(&seen))).name("borrowing"));
    let app = start(
        App::new("extractors").broker(broker.clone(), router),
        broker,
    )
    .await;
    let headers: Headers = [("tenant", "acme"), (CORRELATION_ID, "c-9")]
        .into_iter()
        .collect();
    app.publish_raw("shop.orders.eu", br#"{"id":9}"#, headers)
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        Seen {
            raw: br#"{"id":9}"#.to_vec(),
            text: r#"{"id":9}"#.to_owned(),
            tenant_header: Some("acme".into()),
            name: Some("shop.orders.eu".into()),
            handler: "borrowing".into(),
            destination: "shop.orders.*".into(),
            attempt: 1,
            correlation_id: Some("c-9".into()),
            format: Some(Format::Json),
            decoded: Some(9),
        }
    );
    assert_eq!(app.settlements("borrowing"), [Settlement::Acked]);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_text_argument_rejects_a_payload_that_is_not_utf8() {
    let broker = MemoryBroker::new();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let router = Router::new()
        .subscriber(SubscriberDef::new("orders", Borrowing(Arc::clone(&seen))).name("borrowing"));
    let app = start(App::new("text").broker(broker.clone(), router), broker).await;
    app.publish_raw("orders", [0xff, 0xfe], Headers::new())
        .await
        .unwrap();
    let received = &app.received("borrowing")[0];
    let reason = received.ended.as_ref().and_then(Ended::reason).unwrap();
    assert!(reason.contains("not UTF-8"), "{reason}");
    assert_eq!(received.settlement, Some(Settlement::Rejected));
    assert_eq!(
        *seen.lock().unwrap(),
        Seen::default(),
        "the handler never ran"
    );
    app.shutdown().await.unwrap();
}

/// A custom extractor: the tenant of a message, from its header.
struct Tenant(String);

impl<'a> FromMessage<'a> for Tenant {
    fn from_message(message: &Message<'a>) -> Result<Self, Rejection> {
        message
            .headers()
            .get_str("tenant")
            .map(|tenant| Tenant(tenant.to_owned()))
            .ok_or_else(|| Rejection::Other("no `tenant` header".into()))
    }
}

#[tokio::test]
async fn a_custom_extractor_takes_part_like_the_built_in_ones() {
    let broker = MemoryBroker::new();
    let tenants = Arc::new(Mutex::new(Vec::<String>::new()));
    let router = Router::new().subscriber(
        SubscriberDef::new(
            "orders",
            handler_fn(
                |tenant: Tenant, order: Order, seen: State<Mutex<Vec<String>>>| async move {
                    seen.lock()
                        .unwrap()
                        .push(format!("{}:{}", tenant.0, order.id));
                },
            ),
        )
        .name("orders"),
    );
    let app = App::new("custom")
        .state_arc(Arc::clone(&tenants))
        .broker(broker.clone(), router);
    let app = start(app, broker).await;
    let headers: Headers = [("tenant", "acme")].into_iter().collect();
    app.publish_raw("orders", br#"{"id":1}"#, headers)
        .await
        .unwrap();
    app.publish("orders", &Order { id: 2 }).await.unwrap();
    assert_eq!(*tenants.lock().unwrap(), ["acme:1"]);
    assert_eq!(
        app.received("orders")[1].ended,
        Some(Ended::Rejected("no `tenant` header".into()))
    );
    assert_eq!(
        app.settlements("orders"),
        [Settlement::Acked, Settlement::Rejected]
    );
    app.shutdown().await.unwrap();
}
