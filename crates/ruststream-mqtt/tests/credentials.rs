//! Credentials never show: not in `Debug`, errors or the AsyncAPI server description,
//! against a private Mosquitto that requires a user and password.

mod support;

use std::time::Duration;

use ruststream::kit::live::fresh_name;
use ruststream::{Broker, DescribeServer, OutgoingMessage, Publisher};
use ruststream_mqtt::{Config, MqttBroker, Protocol};

const PASSWORD: &str = "pa55-w0rd-never-shown";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_appears_in_no_debug_error_or_server_description() {
    let test = "the_password_appears_in_no_debug_error_or_server_description";
    let Some(server) = support::private_server_with(test, Some(("app", PASSWORD))).await else {
        return;
    };
    for protocol in [Protocol::V5, Protocol::V311] {
        let config = |password: &str| {
            Config::new(protocol, "127.0.0.1", server.port(), fresh_name("rs_cred"))
                .credentials("app", password.to_owned())
                .connect_timeout(Duration::from_secs(3))
        };
        // Right password: connects and publishes.
        let broker = MqttBroker::new(config(PASSWORD));
        assert!(!format!("{broker:?}").contains(PASSWORD));
        let spec = format!("{:?}", broker.describe_server());
        assert!(!spec.contains(PASSWORD) && !spec.contains("app@"));
        broker
            .connect()
            .await
            .expect("connect with the right password");
        broker
            .publish(OutgoingMessage::new("credentials/check", b"x"))
            .await
            .unwrap();
        broker.shutdown().await.unwrap();
        let error = broker
            .publish(OutgoingMessage::new("credentials/check", b"x"))
            .await
            .unwrap_err();
        assert!(!error.to_string().contains(PASSWORD));

        // Wrong password: refused, and the error names neither password.
        let wrong = "wrong-secret-value";
        let broker = MqttBroker::new(config(wrong));
        let error = broker.connect().await.unwrap_err();
        let text = format!("{error} {error:?}");
        assert!(!text.contains(wrong) && !text.contains(PASSWORD), "{text}");
        assert_eq!(
            broker.config().redact(format!("x {wrong} y")),
            "x <redacted> y"
        );
    }
}
