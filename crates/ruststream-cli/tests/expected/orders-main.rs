//! orders: a RustStream service on the memory broker.
//!
//! `cargo run -- run` starts it (Ctrl-C stops it gracefully), `cargo run -- asyncapi gen`
//! prints its AsyncAPI document, and `cargo test` runs its test in process.

use ruststream::memory::MemoryBroker;
use ruststream::runtime::{App, Router};
use ruststream::subscriber;
use serde::{Deserialize, Serialize};

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
fn service(broker: MemoryBroker) -> App {
    let router = Router::new().subscriber(greet);
    App::new("orders")
        .version(env!("CARGO_PKG_VERSION"))
        .broker(broker, router)
}

/// What `run` starts and `asyncapi gen` documents.
#[ruststream::app]
fn app() -> App {
    service(MemoryBroker::new())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ruststream::testing::TestApp;

    use super::*;

    #[tokio::test]
    async fn greet_answers_with_the_name() {
        let broker = MemoryBroker::new();
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
