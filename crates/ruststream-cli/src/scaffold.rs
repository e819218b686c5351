//! `ruststream new`: a service crate that builds and whose test passes.
//!
//! Everything that differs between brokers is one row of [`BROKERS`]; the files are
//! written from the templates below with the row's pieces filled in.

use std::path::{Path, PathBuf};

use crate::error::CliError;

/// What a service on one broker needs.
#[derive(Debug)]
pub(crate) struct BrokerTemplate {
    /// The `--broker` value.
    pub(crate) name: &'static str,
    /// The crate the broker lives in (`ruststream` itself for the memory broker).
    pub(crate) krate: &'static str,
    /// Whether that crate exists yet.
    pub(crate) available: bool,
    /// Features of `ruststream` the service needs for this broker.
    pub(crate) ruststream_features: &'static [&'static str],
    /// The `use` lines `src/main.rs` needs for this broker (sorted in with the others).
    pub(crate) imports: &'static [&'static str],
    /// The broker's type, which the service is built on.
    pub(crate) broker_type: &'static str,
    /// The expression `main` runs the service on.
    pub(crate) broker: &'static str,
    /// The expression the test runs the service on, in process.
    pub(crate) test_broker: &'static str,
    /// What `cargo run -- run` needs, for the README.
    pub(crate) needs: &'static str,
}

/// Every broker `--broker` accepts. A broker crate joins with one row.
pub(crate) const BROKERS: &[BrokerTemplate] = &[
    BrokerTemplate {
        name: "memory",
        krate: "ruststream",
        available: true,
        ruststream_features: &["memory"],
        imports: &["use ruststream::memory::MemoryBroker;"],
        broker_type: "MemoryBroker",
        broker: "MemoryBroker::new()",
        test_broker: "MemoryBroker::new()",
        needs: "It runs on the embedded memory broker: nothing else to start.",
    },
    BrokerTemplate {
        name: "nats",
        krate: "ruststream-nats",
        available: true,
        ruststream_features: &[],
        imports: &["use ruststream_nats::{Config, NatsBroker};"],
        broker_type: "NatsBroker",
        broker: "NatsBroker::new(Config::new(\n        \
                 std::env::var(\"NATS_URL\").unwrap_or_else(|_| \"nats://127.0.0.1:4222\".to_owned()),\n    \
                 ))",
        test_broker: "NatsBroker::in_process()",
        needs: "It connects to the NATS server at `$NATS_URL` (default \
                `nats://127.0.0.1:4222`; start one with `nats-server -js`). The test needs no \
                server: it runs the app on `NatsBroker::in_process()`, which routes by NATS \
                subject rules in process.",
    },
    BrokerTemplate {
        name: "redis",
        krate: "ruststream-redis",
        available: true,
        ruststream_features: &[],
        imports: &["use ruststream_redis::{Config, RedisBroker};"],
        broker_type: "RedisBroker",
        broker: "RedisBroker::new(Config::new(\n        \
                 std::env::var(\"REDIS_URL\").unwrap_or_else(|_| \"redis://127.0.0.1:6379\".to_owned()),\n    \
                 ))",
        test_broker: "RedisBroker::in_process()",
        needs: "It connects to the Redis server at `$REDIS_URL` (default \
                `redis://127.0.0.1:6379`; start one with `redis-server`), and its handler \
                reads the Pub/Sub channel `hello`. The test needs no server: it runs the app \
                on `RedisBroker::in_process()`, which routes by Redis rules in process.",
    },
    BrokerTemplate {
        name: "rabbitmq",
        krate: "ruststream-rabbitmq",
        available: false,
        ruststream_features: &[],
        imports: &[],
        broker: "",
        broker_type: "",
        test_broker: "",
        needs: "",
    },
    BrokerTemplate {
        name: "mqtt",
        krate: "ruststream-mqtt",
        available: true,
        ruststream_features: &[],
        imports: &["use ruststream_mqtt::{Config, MqttBroker, Protocol};"],
        broker_type: "MqttBroker",
        broker: "MqttBroker::new(Config::new(\n        \
                 Protocol::V5,\n        \
                 std::env::var(\"MQTT_HOST\").unwrap_or_else(|_| \"127.0.0.1\".to_owned()),\n        \
                 std::env::var(\"MQTT_PORT\")\n            \
                 .ok()\n            \
                 .and_then(|port| port.parse().ok())\n            \
                 .unwrap_or(1883),\n        \
                 format!(\"{}-{}\", env!(\"CARGO_PKG_NAME\"), std::process::id()),\n    \
                 ))",
        test_broker: "MqttBroker::in_process()",
        needs: "It connects with MQTT 5 to the server at `$MQTT_HOST`:`$MQTT_PORT` (default \
                `127.0.0.1:1883`; start one with `mosquitto -p 1883`), as the client id \
                `<name>-<process id>`; `Protocol::V311` in `src/main.rs` speaks MQTT 3.1.1 \
                instead. The test needs no server: it runs the app on \
                `MqttBroker::in_process()`, which routes by MQTT topic rules in process.",
    },
    BrokerTemplate {
        name: "kafka",
        krate: "ruststream-kafka",
        available: false,
        ruststream_features: &[],
        imports: &[],
        broker: "",
        broker_type: "",
        test_broker: "",
        needs: "",
    },
];

/// The `--broker` values, for clap.
pub(crate) fn broker_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(BROKERS.iter().map(|row| row.name))
}

/// What `ruststream new` was asked for.
#[derive(Debug)]
pub(crate) struct Options {
    /// The crate's name.
    pub(crate) name: String,
    /// The `--broker` value.
    pub(crate) broker: String,
    /// A RustStream checkout to depend on by path.
    pub(crate) ruststream_path: Option<PathBuf>,
}

/// The version of the RustStream crates a generated service depends on.
const RUSTSTREAM_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The files of the service, by path relative to its folder.
pub(crate) fn files(options: &Options) -> Result<Vec<(&'static str, String)>, CliError> {
    check_name(&options.name)?;
    let row = BROKERS
        .iter()
        .find(|row| row.name == options.broker)
        .ok_or_else(|| {
            CliError::Scaffold(format!(
                "there is no `{}` broker; choose one of: {}",
                options.broker,
                BROKERS
                    .iter()
                    .map(|row| row.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    if !row.available {
        return Err(CliError::Scaffold(format!(
            "`ruststream new` has no {} template yet (a service can depend on `{}` directly); available now: {}",
            row.name,
            row.krate,
            BROKERS
                .iter()
                .filter(|row| row.available)
                .map(|row| row.name)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let source = |krate: &str| -> Result<String, CliError> {
        match &options.ruststream_path {
            Some(root) => {
                let dir = root.join("crates").join(krate);
                let dir = dir.canonicalize().map_err(|error| {
                    CliError::Scaffold(format!(
                        "--ruststream-path {}: there is no {} ({error}); give the root of a \
                         RustStream checkout",
                        root.display(),
                        dir.display()
                    ))
                })?;
                Ok(format!("path = {}", toml_string(&dir.to_string_lossy())))
            }
            None => Ok(format!("version = \"{RUSTSTREAM_VERSION}\"")),
        }
    };
    let mut features = vec!["json", "macros", "cli"];
    features.extend(row.ruststream_features);
    let features = features
        .iter()
        .map(|feature| format!("\"{feature}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let ruststream = source("ruststream")?;
    let mut dependencies = format!("ruststream = {{ {ruststream}, features = [{features}] }}\n");
    let mut dev_dependencies =
        format!("ruststream = {{ {ruststream}, features = [\"testing\"] }}\n");
    if row.krate != "ruststream" {
        let broker = source(row.krate)?;
        dependencies.push_str(&format!("{} = {{ {broker} }}\n", row.krate));
        dev_dependencies.push_str(&format!(
            "{} = {{ {broker}, features = [\"testing\"] }}\n",
            row.krate
        ));
    }
    let name = &options.name;
    let cargo_toml = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
{dependencies}serde = {{ version = "1", features = ["derive"] }}
tokio = {{ version = "1", features = ["rt-multi-thread", "macros"] }}

[dev-dependencies]
{dev_dependencies}"#
    );
    // In the order rustfmt keeps them, so that the new crate is formatted as it stands.
    let mut uses: Vec<&str> = COMMON_USES.iter().chain(row.imports).copied().collect();
    uses.sort_unstable();
    let main_rs = MAIN_RS
        .replace("{name}", name)
        .replace("{broker_name}", row.name)
        .replace("{uses}", &uses.join("\n"))
        .replace("{broker_type}", row.broker_type)
        .replace("{broker}", row.broker)
        .replace("{test_broker}", row.test_broker);
    let readme = README
        .replace("{name}", name)
        .replace("{broker_name}", row.name)
        .replace("{needs}", row.needs);
    Ok(vec![
        ("Cargo.toml", cargo_toml),
        ("src/main.rs", main_rs),
        ("README.md", readme),
        (".gitignore", "/target\n".to_owned()),
    ])
}

/// Writes the service into `dir`, which must not exist or be empty.
pub(crate) fn generate(options: &Options, dir: &Path) -> Result<(), CliError> {
    let files = files(options)?;
    if let Ok(mut entries) = std::fs::read_dir(dir)
        && entries.next().is_some()
    {
        return Err(CliError::Scaffold(format!(
            "{} exists and is not empty: choose another --path, or remove it",
            dir.display()
        )));
    }
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| CliError::Write {
                path: parent.to_owned(),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| CliError::Write { path, source })?;
    }
    Ok(())
}

/// A name cargo accepts for a package and a binary.
fn check_name(name: &str) -> Result<(), CliError> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(CliError::Scaffold(format!(
            "`{name}` cannot name a crate: start with a letter and use letters, digits, `-` \
             and `_` (such as `order-service`)"
        )))
    }
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The `use` lines of every service's `src/main.rs`.
const COMMON_USES: &[&str] = &[
    "use ruststream::runtime::{App, Router};",
    "use ruststream::subscriber;",
    "use serde::{Deserialize, Serialize};",
];

const MAIN_RS: &str = r#"//! {name}: a RustStream service on the {broker_name} broker.
//!
//! `cargo run -- run` starts it (Ctrl-C stops it gracefully), `cargo run -- asyncapi gen`
//! prints its AsyncAPI document, and `cargo test` runs its test in process.

{uses}

/// Someone to greet.
#[derive(Debug, Serialize, Deserialize)]
struct Hello {
    /// Their name.
    name: String,
}

/// The answer to a [`Hello`].
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Greeting {
    /// What to say.
    text: String,
}

/// Answers each `Hello` on `hello`; the message is acked when it returns.
#[subscriber("hello")]
async fn greet(hello: Hello) -> Greeting {
    Greeting {
        text: format!("Hello, {}!", hello.name),
    }
}

/// The service on `broker`: `main` gives it the broker to serve on, the test one of its own.
fn service(broker: {broker_type}) -> App {
    let router = Router::new().subscriber(greet);
    App::new("{name}")
        .version(env!("CARGO_PKG_VERSION"))
        .broker(broker, router)
}

/// What `run` starts and `asyncapi gen` documents.
#[ruststream::app]
fn app() -> App {
    service({broker})
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ruststream::testing::TestApp;

    use super::*;

    #[tokio::test]
    async fn greet_answers_with_the_name() {
        let broker = {test_broker};
        let app = TestApp::start(service(broker.clone()), broker)
            .await
            .unwrap();
        let hello = Hello {
            name: "Ada".to_owned(),
        };
        let greeting: Greeting = app
            .request("hello", &hello, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(greeting.text, "Hello, Ada!");
        app.shutdown().await.unwrap();
    }
}
"#;

const README: &str = r#"# {name}

A RustStream service on the {broker_name} broker, made by `ruststream new`. {needs}

```sh
cargo run -- run    # start the service; Ctrl-C stops it gracefully
cargo test          # run its test in process, no broker needed
```

`cargo run -- asyncapi gen` prints its AsyncAPI document, and `cargo run -- --help` lists
the other commands.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn options(broker: &str) -> Options {
        Options {
            name: "orders".to_owned(),
            broker: broker.to_owned(),
            ruststream_path: None,
        }
    }

    #[test]
    fn brokers_without_a_template_name_their_crate() {
        for broker in ["rabbitmq", "kafka"] {
            let error = files(&options(broker)).unwrap_err().to_string();
            assert!(
                error.contains(&format!("has no {broker} template yet")),
                "{error}"
            );
            assert!(error.contains(&format!("ruststream-{broker}")), "{error}");
        }
    }

    #[test]
    fn a_service_depends_by_version_without_a_path() {
        let files = files(&options("nats")).unwrap();
        let cargo = &files[0].1;
        assert!(cargo.contains(&format!(
            "ruststream = {{ version = \"{RUSTSTREAM_VERSION}\""
        )));
        assert!(cargo.contains("ruststream-nats = { version"), "{cargo}");
        let main = &files[1].1;
        assert!(main.contains("NatsBroker::new"), "{main}");
        for (path, text) in &files {
            for placeholder in [
                "{name}",
                "{broker_name}",
                "{broker_type}",
                "{uses}",
                "{broker}",
                "{test_broker}",
                "{needs}",
            ] {
                assert!(!text.contains(placeholder), "{path} keeps {placeholder}");
            }
        }
    }

    #[test]
    fn an_mqtt_service_runs_on_mqtt_5_and_tests_in_process() {
        let files = files(&options("mqtt")).unwrap();
        let cargo = &files[0].1;
        assert!(cargo.contains("ruststream-mqtt = { version"), "{cargo}");
        assert!(cargo.contains("features = [\"testing\"]"), "{cargo}");
        let main = &files[1].1;
        assert!(main.contains("use ruststream_mqtt::{Config, MqttBroker, Protocol};"));
        assert!(main.contains("Protocol::V5"), "{main}");
        assert!(main.contains("MqttBroker::in_process()"), "{main}");
        assert!(files[2].1.contains("mosquitto -p 1883"), "{}", files[2].1);
    }

    #[test]
    fn a_redis_service_reads_redis_url_and_tests_in_process() {
        let files = files(&options("redis")).unwrap();
        assert!(
            files[0].1.contains("ruststream-redis = { version"),
            "{}",
            files[0].1
        );
        let main = &files[1].1;
        assert!(main.contains("use ruststream_redis::{Config, RedisBroker};"));
        assert!(main.contains("REDIS_URL"), "{main}");
        assert!(main.contains("RedisBroker::in_process()"), "{main}");
    }

    /// The service `docs/quickstart.md` shows is the one the generator writes.
    #[test]
    fn the_memory_service_is_the_one_the_quick_start_shows() {
        let mut options = options("memory");
        options.name = "orders".to_owned();
        let files = files(&options).unwrap();
        assert_eq!(
            files[1].1,
            include_str!("../tests/expected/orders-main.rs"),
            "src/main.rs of `ruststream new orders --broker memory` changed: write it to \
             crates/ruststream-cli/tests/expected/orders-main.rs, which docs/quickstart.md shows"
        );
    }

    #[test]
    fn names_must_suit_cargo() {
        let mut bad = options("memory");
        bad.name = "9lives".to_owned();
        assert!(
            files(&bad)
                .unwrap_err()
                .to_string()
                .contains("start with a letter")
        );
    }

    #[test]
    fn a_folder_with_files_is_left_alone() {
        let dir = std::env::temp_dir().join(format!("ruststream-new-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("keep.txt"), "mine").unwrap();
        let error = generate(&options("memory"), &dir).unwrap_err().to_string();
        assert!(error.contains("not empty"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
