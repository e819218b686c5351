//! The Kafka crate's AsyncAPI contribution reaches the app's document: the server with
//! the Kafka binding and no credential, and a group's `groupId` operation binding; the
//! document passes the official AsyncAPI parser.

use ruststream::kit::live::missing;
use ruststream::runtime::{App, Router, SubscriberDef, handler_fn};
use ruststream_kafka::{Config, KafkaBroker, KafkaSource, Sasl, SecurityProtocol};

fn document() -> serde_json::Value {
    let broker = KafkaBroker::new(
        Config::new("kafka-1.internal:9093,kafka-2.internal:9093")
            .security_protocol(SecurityProtocol::SaslSsl)
            .sasl(Sasl::ScramSha512 {
                username: "billing".into(),
                password: "s3cret-pw".into(),
            }),
    );
    let router = Router::new()
        .subscriber(
            SubscriberDef::new(
                KafkaSource::new("orders").group("billing"),
                handler_fn(|| async {}),
            )
            .name("take_order"),
        )
        .subscriber(
            SubscriberDef::new(KafkaSource::new("audit"), handler_fn(|| async {})).name("audit"),
        );
    let app = App::new("billing").broker(broker, router);
    serde_json::to_value(ruststream::asyncapi::document(&app.describe())).expect("serializable")
}

#[test]
fn the_server_and_a_group_are_documented_with_kafka_bindings() {
    let document = document();
    let servers = document["servers"].as_object().expect("servers");
    let server = servers.values().next().expect("one server");
    assert_eq!(server["protocol"], "kafka-secure", "{server:#}");
    assert_eq!(server["host"], "kafka-1.internal:9093", "{server:#}");
    assert_eq!(server["bindings"]["kafka"]["bindingVersion"], "0.5.0");
    let operation = &document["operations"]["take_order"];
    assert_eq!(
        operation["bindings"]["kafka"]["groupId"]["enum"][0], "billing",
        "{operation:#}"
    );
    assert!(!document.to_string().contains("s3cret-pw"), "no credential");
}

#[test]
fn the_document_with_kafka_bindings_passes_the_official_parser() {
    let test = "the_document_with_kafka_bindings_passes_the_official_parser";
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join(".tools/asyncapi-parser/validate.mjs");
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !(node && script.exists()) {
        missing(
            test,
            "node and the AsyncAPI parser are missing (run scripts/test-tools)",
        );
        return;
    }
    let file = std::env::temp_dir().join(format!(
        "ruststream-kafka-asyncapi-{}.json",
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
