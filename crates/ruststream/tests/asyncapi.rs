//! The AsyncAPI document of an app: what `#[subscriber]` records (payload, reply and
//! header schemas), servers from each broker's `DescribeServer`, and no credential from a
//! broker URL anywhere in the document (JSON, YAML, the HTML page).
#![cfg(all(feature = "asyncapi", feature = "testing", feature = "macros"))]

use ruststream::asyncapi::{self, Action, Document};
use ruststream::matching::DotSubjects;
use ruststream::memory::MemoryBroker;
use ruststream::runtime::{App, Raw, Router, Settle, State, SubscriberDef, TypeSchema};
use ruststream::testing::TestClient;
use ruststream::{Headers, ServerSpec, subscriber};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An order.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct Order {
    /// Its number.
    id: u64,
    lines: Vec<Line>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct Line {
    sku: String,
    quantity: u32,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct Quote {
    id: u64,
    price: f64,
}

/// The headers an order carries.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct OrderHeaders {
    /// The tenant the order belongs to.
    #[serde(rename = "x-tenant")]
    tenant: String,
}

/// A payload type without a schema: still a payload, just undocumented.
#[derive(Debug, Deserialize)]
struct Undocumented {
    #[allow(dead_code)]
    id: u64,
}

#[derive(Default)]
struct Stats;

/// Books an order.
#[subscriber("orders.created", headers = OrderHeaders, dead_letter = "orders.dead")]
async fn book(_stats: State<Stats>, order: Order, _headers: &Headers) -> Result<(), String> {
    let _ = order.lines.len();
    Ok(())
}

/// Prices an order; the answer goes to the requester and to `pricing.quoted`.
#[subscriber("pricing.quote", publish_to = "pricing.quoted")]
async fn price(order: Order) -> Result<Quote, String> {
    Ok(Quote {
        id: order.id,
        price: 1.0,
    })
}

#[subscriber("audit.raw")]
async fn audit(_payload: Raw<'_>) -> Settle {
    Settle::Ack
}

#[subscriber("legacy")]
async fn legacy(_order: Undocumented) {}

fn app() -> App {
    App::new("shop")
        .version("2.1.0")
        .description("Takes orders.")
        .broker(
            MemoryBroker::new(),
            Router::new()
                .subscriber(book)
                .subscriber(price)
                .subscriber(audit)
                .subscriber(legacy),
        )
}

fn json(document: &Document) -> serde_json::Value {
    serde_json::from_str(&document.to_json().unwrap()).unwrap()
}

#[test]
fn the_macro_records_payload_reply_and_header_schemas() {
    let document = asyncapi::document(&app().describe());
    let value = json(&document);

    assert_eq!(value["info"]["title"], "shop");
    assert_eq!(value["info"]["version"], "2.1.0");
    assert_eq!(value["info"]["description"], "Takes orders.");
    assert_eq!(value["servers"]["memory"]["protocol"], "memory");
    assert_eq!(value["servers"]["memory"]["host"], "in-process");

    let booked = &value["channels"]["orders_created"];
    assert_eq!(booked["address"], "orders.created");
    assert_eq!(booked["servers"][0]["$ref"], "#/servers/memory");
    let message = &booked["messages"]["book"];
    assert_eq!(message["name"], "Order");
    assert_eq!(message["contentType"], "application/json");
    assert_eq!(message["payload"]["$ref"], "#/components/schemas/Order");
    assert_eq!(
        message["headers"]["$ref"],
        "#/components/schemas/OrderHeaders"
    );
    let schemas = &value["components"]["schemas"];
    assert_eq!(schemas["Order"]["description"], "An order.");
    assert_eq!(
        schemas["Order"]["properties"]["lines"]["items"]["$ref"],
        "#/components/schemas/Line"
    );
    assert_eq!(
        schemas["Line"]["required"],
        serde_json::json!(["sku", "quantity"])
    );
    assert_eq!(
        schemas["OrderHeaders"]["properties"]["x-tenant"]["type"],
        "string"
    );

    let operation = &value["operations"]["book"];
    assert_eq!(operation["action"], "receive");
    assert_eq!(operation["description"], "Books an order.");
    assert!(operation.get("reply").is_none(), "book does not reply");

    // The dead letter is a send of the same message.
    let dead = &value["operations"]["book_dead_letter"];
    assert_eq!(dead["action"], "send");
    assert_eq!(dead["channel"]["$ref"], "#/channels/orders_dead");
    assert_eq!(
        value["channels"]["orders_dead"]["messages"]["book_dead_letter"]["payload"]["$ref"],
        "#/components/schemas/Order"
    );
}

#[test]
fn a_request_reply_handler_documents_its_reply() {
    let document = asyncapi::document(&app().describe());
    let value = json(&document);
    let operation = &value["operations"]["price"];
    let reply_channel = operation["reply"]["channel"]["$ref"].as_str().unwrap();
    assert_eq!(reply_channel, "#/channels/price_reply");
    let channel = &value["channels"]["price_reply"];
    assert!(
        channel["address"].is_null(),
        "a reply goes to each request's reply-to"
    );
    let reply = operation["reply"]["messages"][0]["$ref"].as_str().unwrap();
    assert_eq!(reply, "#/channels/price_reply/messages/price");
    assert_eq!(
        channel["messages"]["price"]["payload"]["$ref"],
        "#/components/schemas/Quote"
    );

    // publish_to: a send operation carrying the same reply schema.
    let send = &value["operations"]["price_to_pricing_quoted"];
    assert_eq!(send["action"], "send");
    assert_eq!(
        value["channels"]["pricing_quoted"]["messages"]["price_reply"]["payload"]["$ref"],
        "#/components/schemas/Quote"
    );
    assert_eq!(
        document.operations.get("price").map(|o| o.action),
        Some(Action::Receive)
    );
}

#[test]
fn types_without_a_schema_are_documented_without_a_payload() {
    let document = asyncapi::document(&app().describe());
    let value = json(&document);
    for (channel, message) in [("audit_raw", "audit"), ("legacy", "legacy")] {
        let message = &value["channels"][channel]["messages"][message];
        assert_eq!(message["contentType"], "application/json");
        assert!(message.get("payload").is_none(), "{message}");
    }
    // A Settle is a settlement, not a reply.
    assert!(value["operations"]["audit"].get("reply").is_none());
}

#[test]
fn a_subscriber_written_by_hand_sets_its_schemas() {
    let subscriber = SubscriberDef::new(
        "orders.created",
        ruststream::runtime::handler_fn(|_: Order| async {}),
    )
    .name("by_hand")
    .payload_schema(TypeSchema::of::<Order>())
    .reply_schema(TypeSchema::new(
        "Ack",
        serde_json::json!({ "type": "boolean" }),
    ));
    let app = App::new("by-hand").broker(MemoryBroker::new(), Router::new().subscriber(subscriber));
    let value = json(&asyncapi::document(&app.describe()));
    assert_eq!(
        value["channels"]["orders_created"]["messages"]["by_hand"]["payload"]["$ref"],
        "#/components/schemas/Order"
    );
    assert_eq!(
        value["channels"]["by_hand_reply"]["messages"]["by_hand"]["payload"],
        serde_json::json!({ "type": "boolean" })
    );
}

#[test]
fn the_page_shows_every_channel_operation_and_schema() {
    let document = asyncapi::document(&app().describe());
    let html = asyncapi::render_html(&document);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("<script"), "the page needs no script");
    for address in [
        "orders.created",
        "orders.dead",
        "pricing.quote",
        "pricing.quoted",
        "audit.raw",
        "legacy",
    ] {
        assert!(
            html.contains(&format!("<span class=\"address\">{address}</span>")),
            "{address}"
        );
    }
    for text in [
        "id=\"operation-book\"",
        "id=\"operation-price\"",
        "id=\"schema-Order\"",
        "id=\"schema-Quote\"",
        "<code>x-tenant</code>",
        "<code>sku</code>",
        "Books an order.",
        "href=\"asyncapi.json\"",
    ] {
        assert!(html.contains(text), "the page lacks {text}");
    }
}

#[test]
fn servers_come_from_each_broker_in_order() {
    let nats = TestClient::new(DotSubjects).with_server(
        ServerSpec::from_url(None, "nats://nats.internal:4222")
            .with_protocol_version("2.10")
            .with_bindings(serde_json::json!({ "nats": { "bindingVersion": "0.1.0" } })),
    );
    let app = App::new("two")
        .broker(
            MemoryBroker::new(),
            Router::new().subscriber(SubscriberDef::new(
                "a",
                ruststream::runtime::handler_fn(|| async {}),
            )),
        )
        .broker(
            nats,
            Router::new().subscriber(SubscriberDef::new(
                "a",
                ruststream::runtime::handler_fn(|| async {}),
            )),
        );
    let value = json(&asyncapi::document(&app.describe()));
    assert_eq!(value["servers"]["nats"]["host"], "nats.internal:4222");
    assert_eq!(value["servers"]["nats"]["protocolVersion"], "2.10");
    assert_eq!(
        value["servers"]["nats"]["bindings"]["nats"]["bindingVersion"],
        "0.1.0"
    );
    // The same name on two brokers: two channels, each on its own server.
    assert_eq!(
        value["channels"]["a"]["servers"][0]["$ref"],
        "#/servers/memory"
    );
    assert_eq!(
        value["channels"]["a_2"]["servers"][0]["$ref"],
        "#/servers/nats"
    );
    assert_eq!(value["channels"]["a_2"]["address"], "a");
}

#[test]
fn credentials_in_a_broker_url_never_reach_the_document() {
    const PASSWORD: &str = "pa55-w0rd-s3cret";
    const TOKEN: &str = "tok-9f8e7d6c5b4a";
    const USER: &str = "alice-the-operator";
    let with_password = TestClient::new(DotSubjects).with_server(ServerSpec::from_url(
        None,
        &format!("nats://{USER}:{PASSWORD}@nats.internal:4222/tenant?token={TOKEN}"),
    ));
    let with_token = TestClient::new(DotSubjects).with_server(ServerSpec::from_url(
        Some("nats"),
        &format!("tls://{TOKEN}@nats-2.internal:4443"),
    ));
    let with_odd_password = TestClient::new(DotSubjects).with_server(ServerSpec::from_url(
        None,
        &format!("redis://:{PASSWORD}/@x#{TOKEN}@cache:6379/0"),
    ));
    let route = || {
        Router::new().subscriber(SubscriberDef::new(
            "orders",
            ruststream::runtime::handler_fn(|| async {}),
        ))
    };
    let app = App::new("secretive")
        .broker(with_password, route())
        .broker(with_token, route())
        .broker(with_odd_password, route());
    let document = asyncapi::document(&app.describe());
    let outputs = [
        ("JSON", document.to_json().unwrap()),
        ("YAML", document.to_yaml().unwrap()),
        ("HTML", asyncapi::render_html(&document)),
        ("Debug", format!("{document:?}")),
    ];
    for (format, text) in &outputs {
        for secret in [PASSWORD, TOKEN, USER] {
            assert!(
                !text.contains(secret),
                "the {format} document holds the credential {secret}:\n{text}"
            );
        }
    }
    // What is not secret is still there.
    let value = json(&document);
    assert_eq!(value["servers"]["nats"]["host"], "nats.internal:4222");
    assert_eq!(value["servers"]["nats"]["pathname"], "/tenant");
    assert_eq!(value["servers"]["nats_2"]["host"], "nats-2.internal:4443");
    assert_eq!(value["servers"]["redis"]["host"], "cache:6379");
}

/// The official parser's script (installed by `scripts/test-tools`), or `None` to skip:
/// a missing tool fails the test instead when `RUSTSTREAM_REQUIRE_SERVERS=1`.
fn validator() -> Option<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join(".tools/asyncapi-parser/validate.mjs");
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if node && script.exists() {
        return Some(script);
    }
    let missing = if node {
        "the AsyncAPI parser (.tools/asyncapi-parser/validate.mjs)"
    } else {
        "node"
    };
    let install = "run scripts/test-tools (it installs node from Debian `nodejs` and the \
                   pinned `@asyncapi/parser` from the npm registry)";
    assert!(
        std::env::var("RUSTSTREAM_REQUIRE_SERVERS").as_deref() != Ok("1"),
        "{missing} is missing: {install}"
    );
    eprintln!("skipped: {missing} is missing ({install})");
    None
}

/// Runs the parser on `text`: its exit status and report.
fn parse(script: &std::path::Path, name: &str, text: &str) -> (bool, String) {
    let file =
        std::env::temp_dir().join(format!("ruststream-asyncapi-{}-{name}", std::process::id()));
    std::fs::write(&file, text).unwrap();
    let output = std::process::Command::new("node")
        .arg(script)
        .arg(&file)
        .output()
        .expect("node runs");
    let _ = std::fs::remove_file(&file);
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[test]
fn headers_replies_and_servers_pass_the_official_parser() {
    let Some(script) = validator() else { return };
    let nats = TestClient::new(DotSubjects).with_server(
        ServerSpec::from_url(None, "nats://u:p@nats.internal:4222")
            .with_bindings(serde_json::json!({ "nats": { "bindingVersion": "0.1.0" } })),
    );
    let app = app().broker(
        nats,
        Router::new().subscriber(SubscriberDef::new(
            "orders.>",
            ruststream::runtime::handler_fn(|| async {}),
        )),
    );
    let document = asyncapi::document(&app.describe());
    for (name, text) in [
        ("shop.json", document.to_json().unwrap()),
        ("shop.yaml", document.to_yaml().unwrap()),
    ] {
        let (ok, report) = parse(&script, name, &text);
        assert!(ok, "the parser rejects {name}:\n{report}\n{text}");
        assert!(report.contains(" 0 error(s), 0 warning(s)"), "{report}");
    }
}

#[test]
fn the_parser_check_catches_a_broken_document() {
    let Some(script) = validator() else { return };
    let document = asyncapi::document(&app().describe());
    // An operation on a channel that does not exist.
    let broken = document
        .to_json()
        .unwrap()
        .replace("\"#/channels/orders_created\"", "\"#/channels/nowhere\"");
    let (ok, report) = parse(&script, "broken.json", &broken);
    assert!(!ok, "the parser accepted a broken document:\n{report}");
    assert!(!report.contains(" 0 error(s)"), "{report}");
}
