//! TLS, on a private RabbitMQ node with a TLS listener that requires client
//! certificates (mutual TLS), with certificates made by `openssl` for the test: the
//! config's root certificate and client certificate connect; without either, connecting
//! fails with an error, never a panic, and never shows the password.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ruststream::kit::Tls;
use ruststream::kit::live::missing;
use ruststream::{
    Broker, IncomingMessage, OutgoingMessage, Publisher, SubscriberExt, SubscriptionSource,
};
use ruststream_rabbitmq::{Config, RabbitBroker, RabbitQueue};
use support::{PRIVATE_PASSWORD, PRIVATE_USER, PrivateNode, free_port};

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        status.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// A CA, a server certificate for localhost and a client certificate, in `dir`.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=ruststream-test-ca",
        ],
    );
    for (name, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
        let cn = if name == "server" {
            "/CN=localhost"
        } else {
            "/CN=rstest"
        };
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                cn,
            ],
        );
        std::fs::write(
            dir.join(format!("{name}.ext")),
            format!(
                "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n"
            ),
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_connects_with_the_configured_certificates_only() {
    let test = "mutual_tls_connects_with_the_configured_certificates_only";
    if Command::new("openssl").arg("version").output().is_err() {
        missing(
            test,
            "openssl is not installed (it makes the test's certificates)",
        );
        return;
    }
    let tls_port = free_port();
    let mut certs = None;
    let Some(node) = PrivateNode::start_with(test, |dir| {
        certificates(dir);
        certs = Some(dir.to_path_buf());
        let dir = dir.display();
        format!(
            "listeners.ssl.default = 127.0.0.1:{tls_port}\n\
             ssl_options.cacertfile = {dir}/ca.pem\n\
             ssl_options.certfile = {dir}/server.pem\n\
             ssl_options.keyfile = {dir}/server.key\n\
             ssl_options.verify = verify_peer\n\
             ssl_options.fail_if_no_peer_cert = true\n"
        )
    })
    .await
    else {
        return;
    };
    let certs = certs.unwrap();
    let url = format!("amqps://localhost:{tls_port}/%2f");
    let config = || {
        Config::new(&url)
            .credentials(PRIVATE_USER, PRIVATE_PASSWORD)
            .connection_timeout(Duration::from_secs(5))
    };
    let full = Tls::default()
        .required(true)
        .root_certificates(certs.join("ca.pem"))
        .client_certificate(certs.join("client.pem"), certs.join("client.key"));

    let broker = RabbitBroker::new(config().tls(full));
    broker.connect().await.expect("mutual TLS connects");
    let mut queue = RabbitQueue::new("tls.orders")
        .subscribe(&broker)
        .await
        .unwrap();
    broker
        .publish(OutgoingMessage::new("tls.orders", b"over TLS"))
        .await
        .unwrap();
    let message = tokio::time::timeout(Duration::from_secs(5), queue.next_message())
        .await
        .expect("a message")
        .unwrap()
        .unwrap();
    assert_eq!(message.payload(), b"over TLS");
    message.ack().await.unwrap();
    broker.shutdown().await.unwrap();

    let no_client_certificate = Tls::default().root_certificates(certs.join("ca.pem"));
    let unknown_server =
        Tls::default().client_certificate(certs.join("client.pem"), certs.join("client.key"));
    for tls in [no_client_certificate, unknown_server] {
        let broker = RabbitBroker::new(config().tls(tls.clone()));
        let error = broker
            .connect()
            .await
            .expect_err(&format!("{tls:?} must not connect"));
        let text = error.to_string();
        assert!(text.contains("cannot connect"), "{text}");
        assert!(!text.contains(PRIVATE_PASSWORD), "{text}");
    }
    drop(node);
}
