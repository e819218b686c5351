//! The AsyncAPI document of every example app, checked by the real tools:
//!
//! - the official parser (`@asyncapi/parser`, pinned, installed by `scripts/test-tools` in
//!   `.tools/asyncapi-parser/`) parses each document, as JSON and as YAML, with no
//!   diagnostic of severity error;
//! - `macros asyncapi gen` writes a document the parser accepts too;
//! - headless Chromium opens the page `macros asyncapi serve` serves and finds every
//!   channel's address rendered.
//!
//! A missing tool (node, the parser, chromium) skips the test with a note, unless
//! `RUSTSTREAM_REQUIRE_SERVERS=1` is set (as `scripts/test` does): then it fails, naming
//! what to install.
#![cfg(unix)]
// The examples are compiled here as modules, for the function that builds each app;
// their `main` and client code go unused.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use ruststream::asyncapi::{self, Document};
use ruststream::memory::MemoryBroker;
use ruststream::runtime::App;

#[path = "../batches.rs"]
mod batches;
#[path = "../demo.rs"]
mod demo;
#[path = "../graceful.rs"]
mod graceful;
#[path = "../macros.rs"]
mod macros;
#[path = "../middleware.rs"]
mod middleware;
#[path = "../quickstart.rs"]
mod quickstart;
#[path = "../request_reply.rs"]
mod request_reply;
#[path = "../retries.rs"]
mod retries;
#[path = "../routers.rs"]
mod routers;
#[path = "../tutorial.rs"]
mod tutorial;
#[path = "../workers.rs"]
mod workers;

/// Every example app, by name.
fn example_apps() -> Vec<(&'static str, App)> {
    vec![
        ("batches", batches::app(MemoryBroker::new())),
        ("demo", demo::app(MemoryBroker::new())),
        ("graceful", graceful::app(MemoryBroker::new())),
        ("macros", macros::app()),
        (
            "middleware",
            middleware::app(
                MemoryBroker::new(),
                Arc::new(AtomicUsize::new(0)),
                Arc::new(AtomicUsize::new(0)),
            ),
        ),
        ("quickstart", quickstart::app()),
        ("request_reply", request_reply::app(MemoryBroker::new())),
        ("retries", retries::app(MemoryBroker::new())),
        (
            "routers",
            routers::app(MemoryBroker::new(), MemoryBroker::new()),
        ),
        ("tutorial", tutorial::service(MemoryBroker::new())),
        ("workers", workers::app(MemoryBroker::new())),
    ]
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the examples crate is in the workspace")
        .to_owned()
}

/// Whether a missing tool fails the test (`RUSTSTREAM_REQUIRE_SERVERS=1`) or skips it.
fn required() -> bool {
    std::env::var("RUSTSTREAM_REQUIRE_SERVERS").is_ok_and(|value| value == "1")
}

/// Fails (when tools are required) or reports the test skipped; `false` means skip.
fn have(tool: &str, present: bool, install: &str) -> bool {
    if present {
        return true;
    }
    assert!(
        !required(),
        "{tool} is missing: {install} (RUSTSTREAM_REQUIRE_SERVERS=1 makes this a failure)"
    );
    eprintln!("skipped: {tool} is missing ({install})");
    false
}

fn runs(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The parser's validation script, if node and the parser are installed.
fn validator() -> Option<PathBuf> {
    let script = workspace_root().join(".tools/asyncapi-parser/validate.mjs");
    let install = "run scripts/test-tools, which installs node (Debian `nodejs`) and the \
                   pinned `@asyncapi/parser` from the npm registry into .tools/asyncapi-parser/";
    if !have("node", runs("node", "--version"), install) {
        return None;
    }
    if !have(
        "the AsyncAPI parser (.tools/asyncapi-parser/validate.mjs)",
        script.exists(),
        install,
    ) {
        return None;
    }
    Some(script)
}

/// A fresh directory under the system's temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ruststream-asyncapi-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

/// Runs the parser on `files`; panics with its report unless it found no error.
fn validate(script: &Path, files: &[PathBuf]) -> String {
    let output = Command::new("node")
        .arg(script)
        .args(files)
        .output()
        .expect("node runs");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the AsyncAPI parser found errors:\n{report}\n{errors}"
    );
    println!("{report}");
    report
}

#[test]
fn every_example_document_passes_the_official_parser() {
    let Some(script) = validator() else { return };
    let dir = temp_dir("examples");
    let mut files = Vec::new();
    for (name, app) in example_apps() {
        let document: Document = asyncapi::document(&app.describe());
        let json = dir.join(format!("{name}.json"));
        std::fs::write(&json, document.to_json().unwrap()).unwrap();
        let yaml = dir.join(format!("{name}.yaml"));
        std::fs::write(&yaml, document.to_yaml().unwrap()).unwrap();
        files.extend([json, yaml]);
    }
    let report = validate(&script, &files);
    assert!(
        report.contains(" 0 error(s)"),
        "the parser's summary counts errors:\n{report}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `target/<profile>/examples/<name>`, built by `cargo test` before the tests.
fn example_binary(name: &str) -> PathBuf {
    let test = std::env::current_exe().expect("the test executable's path");
    let profile_dir = test
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test executable lives in target/<profile>/deps");
    let binary = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "the `{name}` example is not built at {}: run `cargo test --workspace` (or \
         `cargo test -p ruststream-examples`), which builds the examples before the tests",
        binary.display()
    );
    binary
}

#[test]
fn asyncapi_gen_writes_json_and_yaml_the_parser_accepts() {
    let dir = temp_dir("gen");
    let json = dir.join("macros.json");
    let yaml = dir.join("macros.yaml");
    for (format, file) in [("json", &json), ("yaml", &yaml)] {
        let status = Command::new(example_binary("macros"))
            .args(["asyncapi", "gen", "--format", format, "--output"])
            .arg(file)
            .status()
            .expect("the example runs");
        assert!(status.success(), "asyncapi gen --format {format} failed");
    }
    let text = std::fs::read_to_string(&json).unwrap();
    assert!(text.starts_with("{\n  \"asyncapi\": \"3.0.0\""), "{text}");
    assert!(
        text.contains("\"$ref\": \"#/components/schemas/Order\""),
        "{text}"
    );
    assert!(
        std::fs::read_to_string(&yaml)
            .unwrap()
            .starts_with("asyncapi: \"3.0.0\"")
    );
    if let Some(script) = validator() {
        validate(&script, &[json, yaml]);
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Kills the child if the test ends before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `child` to exit, for at most `limit`; kills it after that.
fn wait_with_limit(child: Child, limit: Duration) -> std::process::Output {
    let (done, finished) = mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match finished.recv_timeout(limit) {
        Ok(output) => output.expect("the process's output"),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("the process {pid} did not finish within {limit:?}");
        }
    }
}

#[test]
fn headless_chromium_renders_every_channel_of_asyncapi_serve() {
    if !have(
        "chromium",
        runs("chromium", "--version"),
        "run scripts/test-tools, which installs Debian `chromium`",
    ) {
        return;
    }
    let mut service = Running(
        Command::new(example_binary("macros"))
            .args(["asyncapi", "serve", "--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the example starts"),
    );
    let stdout = service.0.stdout.take().expect("piped stdout");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let line = received
        .recv_timeout(Duration::from_secs(20))
        .expect("asyncapi serve prints its address");
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();

    let profile = temp_dir("chromium");
    let chromium = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(&url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let output = wait_with_limit(chromium, Duration::from_secs(90));
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && !dom.is_empty(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let document = asyncapi::document(&macros::app().describe());
    let addresses: Vec<&str> = document
        .channels
        .iter()
        .filter_map(|(_, channel)| channel.address.as_deref())
        .collect();
    assert!(addresses.len() >= 4, "{addresses:?}");
    for address in addresses {
        assert!(
            dom.contains(&format!("<span class=\"address\">{address}</span>")),
            "the page as Chromium rendered it lacks the channel `{address}`:\n{dom}"
        );
    }
    for name in ["book_order", "quote_order", "Order", "Quote"] {
        assert!(dom.contains(name), "the page lacks `{name}`");
    }
    let _ = std::fs::remove_dir_all(profile);
}
