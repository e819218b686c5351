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
use ruststream::codec::{Encode, MsgPack, erased_serde};
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

/// A codec of the user's: JSON under a content type of its own, with a prefix byte so a
/// plain JSON decoder cannot read it by accident.
struct Tagged;

impl ruststream::runtime::CustomCodec for Tagged {
    fn content_type(&self) -> &'static str {
        "application/vnd.tagged+json"
    }

    fn deserialize(
        &self,
        bytes: &[u8],
        visit: &mut dyn FnMut(
            &mut dyn erased_serde::Deserializer<'_>,
        ) -> Result<(), erased_serde::Error>,
    ) -> Result<(), String> {
        let Some(json) = bytes.strip_prefix(b"#") else {
            return Err("no tag".to_owned());
        };
        let mut json = serde_json::Deserializer::from_slice(json);
        visit(&mut <dyn erased_serde::Deserializer>::erase(&mut json)).map_err(|e| e.to_string())
    }

    fn serialize(
        &self,
        value: &dyn erased_serde::Serialize,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        out.push(b'#');
        let mut json = serde_json::Serializer::new(out);
        erased_serde::serialize(value, &mut json).map_err(|e| e.to_string())
    }
}

static TAGGED: Tagged = Tagged;

#[tokio::test]
async fn a_custom_codec_decodes_its_subscribers_and_every_payload_labelled_with_it() {
    use ruststream::runtime::{Format, Respond};

    let broker = MemoryBroker::new();
    let router = Router::new()
        .subscriber(
            SubscriberDef::new(
                "tagged",
                handler_fn(|order: Order| async move { Respond(Order { id: order.id + 1 }) }),
            )
            .name("tagged")
            .format(Format::custom(&TAGGED))
            .publish_to("tagged.out"),
        )
        .subscriber(SubscriberDef::new("tagged.out", handler_fn(|_: Order| async {})).name("out"))
        .subscriber(
            SubscriberDef::new("orders", handler_fn(|_: Order| async {}))
                .name("orders")
                .on_decode_error(FailurePolicy::Drop),
        );
    let app = TestApp::start(App::new("custom").broker(broker.clone(), router), broker)
        .await
        .unwrap();

    // Its own subscriber decodes it, and replies in it.
    app.publish_raw("tagged", br##"#{"id":1}"##, Headers::new())
        .await
        .unwrap();
    let out = app.received("out");
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0].payload[..], br##"#{"id":2}"##);
    assert_eq!(
        out[0].header(CONTENT_TYPE),
        Some("application/vnd.tagged+json")
    );
    // A JSON subscriber decodes a payload labelled with it.
    let mut headers = Headers::new();
    headers.insert(CONTENT_TYPE, "application/vnd.tagged+json");
    app.publish_raw("orders", br##"#{"id":3}"##, headers)
        .await
        .unwrap();
    assert_eq!(app.settlements("orders"), [Settlement::Acked]);
    app.shutdown().await.unwrap();
}
