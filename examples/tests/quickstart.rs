//! The quickstart example builds, its app documents its one handler, and its binary runs.
#![allow(dead_code)]

use std::process::Command;

#[path = "../quickstart.rs"]
mod quickstart;

#[test]
fn the_app_has_its_one_handler() {
    let document = ruststream::asyncapi::document(&quickstart::app().describe());
    let channel = document
        .channels
        .get("orders_created")
        .expect("the channel");
    assert_eq!(channel.address.as_deref(), Some("orders.created"));
    assert_eq!(document.operations.len(), 1);
}

/// `target/<profile>/examples/quickstart`, built by `cargo test` before the tests.
fn example_binary() -> std::path::PathBuf {
    let test = std::env::current_exe().expect("the test executable's path");
    let profile_dir = test
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test executable lives in target/<profile>/deps");
    profile_dir
        .join("examples")
        .join(format!("quickstart{}", std::env::consts::EXE_SUFFIX))
}

#[test]
fn the_binary_prints_its_asyncapi_document() {
    let output = Command::new(example_binary())
        .args(["asyncapi", "gen"])
        .output()
        .expect("the quickstart example is built by `cargo test -p ruststream-examples`");
    assert!(output.status.success());
    let document = String::from_utf8_lossy(&output.stdout);
    assert!(document.contains("\"title\": \"quickstart\""), "{document}");
    assert!(document.contains("orders.created"), "{document}");
}
