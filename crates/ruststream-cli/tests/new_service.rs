//! `ruststream new` writes a service that builds and whose test passes, for every broker
//! whose crate exists; for the others it names the missing crate.
//!
//! The services are generated outside the workspace (in the system's temporary folder) and
//! depend on this checkout's crates by path. They build with `cargo test --offline` into
//! one shared target folder under this workspace's `target/tmp`, with this workspace's
//! lock file and debug settings, so the dependencies are built once, not once per run.

use std::path::{Path, PathBuf};
use std::process::Command;

const CLI: &str = env!("CARGO_BIN_EXE_ruststream");

/// The brokers whose crates exist.
const AVAILABLE: &[&str] = &["memory", "nats", "redis", "mqtt"];

/// The brokers still to come.
const TO_COME: &[&str] = &["rabbitmq", "kafka"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root")
}

/// A fresh folder outside the workspace, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "ruststream-new-{label}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_nanos())
        ));
        std::fs::create_dir_all(&dir).expect("a scratch folder");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `cargo ARGS` in `dir`, offline, into the shared target folder; panics with the output
/// when it fails.
fn cargo(dir: &Path, args: &[&str]) -> String {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("generated-services");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "--offline",
            "--config",
            "profile.dev.debug=\"line-tables-only\"",
            "--config",
            "profile.dev.package.\"*\".debug=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .env("CARGO_INCREMENTAL", "0")
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "`cargo {}` failed in {}:\n{stdout}\n{}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn new_service(scratch: &Scratch, broker: &str) -> PathBuf {
    let dir = scratch.0.join(format!("{broker}-service"));
    let output = Command::new(CLI)
        .args([
            "new",
            &format!("{broker}-service"),
            "--broker",
            broker,
            "--path",
        ])
        .arg(&dir)
        .arg("--ruststream-path")
        .arg(workspace_root())
        .output()
        .expect("ruststream runs");
    assert!(
        output.status.success(),
        "ruststream new --broker {broker} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // This workspace's versions of every dependency: nothing to resolve offline, and the
    // shared target folder's builds match.
    std::fs::copy(workspace_root().join("Cargo.lock"), dir.join("Cargo.lock"))
        .expect("the workspace's Cargo.lock");
    dir
}

#[test]
fn every_available_broker_scaffolds_a_service_whose_tests_pass() {
    let scratch = Scratch::new("services");
    for broker in AVAILABLE {
        let dir = new_service(&scratch, broker);
        for file in ["Cargo.toml", "src/main.rs", "README.md"] {
            assert!(dir.join(file).is_file(), "{broker}: no {file}");
        }
        // Formatted as rustfmt would have it: `cargo fmt` on the new crate changes nothing.
        let rustfmt = Command::new("rustfmt")
            .args(["--edition", "2024", "--check"])
            .arg(dir.join("src/main.rs"))
            .output()
            .expect("rustfmt runs");
        assert!(
            rustfmt.status.success(),
            "{broker}: src/main.rs is not formatted:\n{}",
            String::from_utf8_lossy(&rustfmt.stdout)
        );
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        assert!(readme.contains("cargo run -- run") && readme.contains("cargo test"));
        let tests = cargo(&dir, &["test"]);
        assert!(
            tests.contains("test tests::greet_answers_with_the_name ... ok"),
            "{broker}: {tests}"
        );
    }
}

#[test]
fn a_memory_service_documents_itself_and_the_document_checks() {
    let scratch = Scratch::new("asyncapi");
    let dir = new_service(&scratch, "memory");
    let document = dir.join("asyncapi.json");
    cargo(
        &dir,
        &[
            "run",
            "--quiet",
            "--",
            "asyncapi",
            "gen",
            "--output",
            "asyncapi.json",
        ],
    );
    let output = Command::new(CLI)
        .args(["asyncapi", "check"])
        .arg(&document)
        .output()
        .expect("ruststream runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("a valid AsyncAPI 3.0.0 document: `memory-service`"),
        "{stdout}"
    );
    assert!(stdout.contains("1 operation(s)"), "{stdout}");
}

#[test]
fn brokers_to_come_name_their_missing_crate() {
    let scratch = Scratch::new("to-come");
    for broker in TO_COME {
        let output = Command::new(CLI)
            .args(["new", "svc", "--broker", broker, "--path"])
            .arg(scratch.0.join(broker))
            .output()
            .expect("ruststream runs");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("has no {broker} template yet")),
            "{stderr}"
        );
        assert!(
            !scratch.0.join(broker).exists(),
            "{broker}: wrote files anyway"
        );
    }
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let output = Command::new(CLI)
            .args(["completions", shell])
            .output()
            .expect("ruststream runs");
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&output.stdout);
        assert!(
            script.contains("ruststream") && script.contains("subscribe"),
            "{shell}"
        );
    }
}
