//! What the Redis crate adds to an app's AsyncAPI document: the server (no credential)
//! and each source's `x-redis` operation binding (Redis has no official one), in a
//! document the official parser accepts.

use std::time::Duration;

use ruststream::runtime::{App, Router, SubscriberDef, handler_fn};
use ruststream_redis::{Config, RedisBroker, RedisSource};

fn document() -> serde_json::Value {
    let broker = RedisBroker::new(Config::new("redis://svc:s3cret@cache.internal:6379/2"));
    let router = Router::new()
        .subscriber(
            SubscriberDef::new(
                RedisSource::stream("orders")
                    .group("billing")
                    .max_deliver(5)
                    .claim_idle(Duration::from_secs(60)),
                handler_fn(|| async {}),
            )
            .name("bill"),
        )
        .subscriber(
            SubscriberDef::new(RedisSource::list("jobs"), handler_fn(|| async {})).name("work"),
        )
        .subscriber(
            SubscriberDef::new(RedisSource::pattern("news.*"), handler_fn(|| async {}))
                .name("read"),
        );
    let app = App::new("shop").broker(broker, router);
    serde_json::to_value(ruststream::asyncapi::document(&app.describe())).expect("serializable")
}

#[test]
fn sources_are_documented_with_their_kind_and_options() {
    let document = document();
    let bill = &document["operations"]["bill"]["bindings"]["x-redis"];
    assert_eq!(bill["kind"], "stream", "{document:#}");
    assert_eq!(bill["group"], "billing");
    assert_eq!(bill["maxDeliver"], 5);
    assert_eq!(
        document["operations"]["work"]["bindings"]["x-redis"]["kind"],
        "list"
    );
    assert_eq!(
        document["operations"]["read"]["bindings"]["x-redis"]["kind"],
        "pattern"
    );
    let text = document.to_string();
    assert!(
        !text.contains("s3cret"),
        "no credential in the document: {text}"
    );
    assert!(text.contains("cache.internal:6379"), "{text}");
}

#[test]
fn the_document_passes_the_official_asyncapi_parser() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let validator = root.join(".tools/asyncapi-parser/validate.mjs");
    let has_node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !has_node || !validator.exists() {
        ruststream::kit::live::missing(
            "the_document_passes_the_official_asyncapi_parser",
            "node or the AsyncAPI parser is missing (run scripts/test-tools)",
        );
        return;
    }
    let path = std::env::temp_dir().join(format!(
        "ruststream-redis-asyncapi-{}.json",
        std::process::id()
    ));
    std::fs::write(&path, document().to_string()).expect("write the document");
    let checked = std::process::Command::new("node")
        .arg(&validator)
        .arg(&path)
        .output()
        .expect("run node");
    let _ = std::fs::remove_file(&path);
    assert!(
        checked.status.success(),
        "the AsyncAPI parser refused the document:\n{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}
