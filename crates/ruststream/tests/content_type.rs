//! On consume the runtime reads a message's `content-type`: a label naming JSON,
//! MessagePack or CBOR decodes with that format whatever the subscriber's; a label naming
//! another encoding goes to the decode-failure policy with a reason naming both types.
#![cfg(all(
    feature = "testing",
    feature = "json",
    feature = "msgpack",
    feature = "cbor"
))]

use ruststream::Headers;
use ruststream::codec::{Encode, MsgPack};
use ruststream::headers::CONTENT_TYPE;
use ruststream::memory::MemoryBroker;
use ruststream::runtime::{
    App, DEAD_LETTER_REASON_HEADER, FailurePolicy, Router, Settlement, SubscriberDef, handler_fn,
};
use ruststream::testing::TestApp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, PartialEq, Clone)]
struct Order {
    id: u64,
}

fn app(broker: &MemoryBroker) -> App {
    let router = Router::new()
        .subscriber(
            SubscriberDef::new("orders", handler_fn(|_: Order| async {}))
                .name("orders")
                .on_decode_error(FailurePolicy::DeadLetter)
                .dead_letter("orders.dead"),
        )
        .subscriber(SubscriberDef::new("orders.dead", handler_fn(|| async {})).name("dead"));
    App::new("labels").broker(broker.clone(), router)
}

async fn publish(app: &TestApp<MemoryBroker>, body: &[u8], label: &str) {
    let mut headers = Headers::new();
    headers.insert(CONTENT_TYPE, label.to_owned());
    app.publish_raw("orders", body, headers).await.unwrap();
}

#[tokio::test]
async fn a_label_chooses_the_codec_and_an_unknown_one_is_a_decode_failure() {
    let broker = MemoryBroker::new();
    let app = TestApp::start(app(&broker), broker.clone()).await.unwrap();

    let mut packed = Vec::new();
    MsgPack.encode(&Order { id: 7 }, &mut packed).unwrap();
    publish(&app, &packed, "application/msgpack").await;
    publish(&app, br#"{"id":8}"#, "text/plain; charset=utf-8").await;
    publish(&app, b"\x08\x09", "application/x-protobuf").await;

    assert_eq!(
        app.settlements("orders"),
        [
            Settlement::Acked,
            Settlement::Acked,
            Settlement::DeadLettered
        ]
    );
    let dead = app.received("dead");
    assert_eq!(dead.len(), 1);
    let reason = dead[0].header(DEAD_LETTER_REASON_HEADER).unwrap();
    assert!(reason.contains("application/x-protobuf"), "{reason}");
    assert!(reason.contains("application/json"), "{reason}");
    app.shutdown().await.unwrap();
}
