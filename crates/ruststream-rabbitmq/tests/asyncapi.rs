//! The RabbitMQ crate's AsyncAPI contribution reaches the app's document: the `amqp`
//! server without credentials, and each queue's operation binding; the document passes
//! the official AsyncAPI parser.

use ruststream::runtime::{App, Router, SubscriberDef, handler_fn};
use ruststream_rabbitmq::{Config, RabbitBroker, RabbitExchange, RabbitQueue};

fn document() -> serde_json::Value {
    let broker = RabbitBroker::new(Config::new(
        "amqp://svc:s3cret@rabbit.internal:5672/%2fshop",
    ));
    let router = Router::new()
        .subscriber(
            SubscriberDef::new(
                RabbitQueue::new("billing")
                    .quorum()
                    .bind(RabbitExchange::topic("orders"), "orders.*.created")
                    .bind(RabbitExchange::topic("orders"), "orders.*.paid"),
                handler_fn(|| async {}),
            )
            .name("bill"),
        )
        .subscriber(SubscriberDef::new("audit", handler_fn(|| async {})).name("audit"));
    let app = App::new("shop").broker(broker, router);
    serde_json::to_value(ruststream::asyncapi::document(&app.describe())).expect("serializable")
}

#[test]
fn the_server_is_amqp_without_credentials_and_queues_have_bindings() {
    let document = document();
    let text = document.to_string();
    assert!(!text.contains("s3cret"), "no credential in the document");
    let servers = document["servers"].as_object().expect("servers");
    let server = servers.values().next().expect("one server");
    assert_eq!(server["protocol"], "amqp", "{server:#}");
    assert_eq!(server["protocolVersion"], "0.9.1", "{server:#}");
    assert_eq!(server["host"], "rabbit.internal:5672", "{server:#}");
    let binding = &document["operations"]["bill"]["bindings"]["amqp"];
    assert_eq!(binding["ack"], true, "{binding:#}");
    assert_eq!(binding["cc"][0], "orders.*.created", "{binding:#}");
    assert_eq!(binding["cc"][1], "orders.*.paid", "{binding:#}");
}

#[test]
fn the_document_with_amqp_bindings_passes_the_official_parser() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join(".tools/asyncapi-parser/validate.mjs");
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !(node && script.exists()) {
        ruststream::kit::live::missing(
            "the_document_with_amqp_bindings_passes_the_official_parser",
            "node and the AsyncAPI parser are missing: run scripts/test-tools",
        );
        return;
    }
    let file = std::env::temp_dir().join(format!(
        "ruststream-rabbitmq-asyncapi-{}.json",
        std::process::id()
    ));
    std::fs::write(&file, document().to_string()).expect("a temporary file");
    let output = std::process::Command::new("node")
        .arg(&script)
        .arg(&file)
        .output()
        .expect("node runs");
    let _ = std::fs::remove_file(&file);
    assert!(
        output.status.success(),
        "the parser refused the document:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
