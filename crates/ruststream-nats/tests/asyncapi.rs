//! The NATS crate's AsyncAPI contribution reaches the app's document: the server with its
//! bindings, and a queue group's operation binding.

use ruststream::runtime::{App, Router, SubscriberDef, handler_fn};
use ruststream_nats::{Config, NatsBroker, NatsSource};

fn document() -> serde_json::Value {
    let broker = NatsBroker::new(Config::new("nats://svc:s3cret@nats.internal:4222"));
    let router = Router::new()
        .subscriber(
            SubscriberDef::new(
                NatsSource::new("orders.created").queue_group("workers"),
                handler_fn(|| async {}),
            )
            .name("handle_order"),
        )
        .subscriber(
            SubscriberDef::new(NatsSource::new("audit.>"), handler_fn(|| async {})).name("audit"),
        );
    let app = App::new("orders").broker(broker, router);
    serde_json::to_value(ruststream::asyncapi::document(&app.describe())).expect("serializable")
}

#[test]
fn a_queue_group_is_documented_as_a_nats_operation_binding() {
    let document = document();
    let operation = &document["operations"]["handle_order"];
    assert_eq!(
        operation["bindings"]["nats"]["queue"], "workers",
        "{operation:#}"
    );
    assert!(
        document["operations"]["audit"].get("bindings").is_none(),
        "no queue, no binding"
    );
    assert!(
        !document.to_string().contains("s3cret"),
        "no credential in the document"
    );
}

#[test]
fn the_document_with_nats_bindings_passes_the_official_parser() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join(".tools/asyncapi-parser/validate.mjs");
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !(node && script.exists()) {
        let install = "node and the AsyncAPI parser are missing: run scripts/test-tools";
        assert!(
            std::env::var("RUSTSTREAM_REQUIRE_SERVERS").as_deref() != Ok("1"),
            "{install}"
        );
        eprintln!("skipped: {install}");
        return;
    }
    let file = std::env::temp_dir().join(format!(
        "ruststream-nats-asyncapi-{}.json",
        std::process::id()
    ));
    std::fs::write(&file, document().to_string()).expect("temp file");
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
