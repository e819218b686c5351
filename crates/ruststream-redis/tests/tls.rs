//! TLS with a certificate authority of the test's own: a private `redis-server` serving
//! TLS only, reached through `rediss://` with `Config::tls` naming the CA (crate feature
//! `tls`); without the CA the connection is refused, with an error that says so.
#![cfg(feature = "tls")]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ruststream::SubscriptionSource;
use ruststream::kit::Tls;
use ruststream::kit::live::{ServerProcess, missing};
use ruststream::prelude::*;
use ruststream_redis::{Config, RedisBroker, RedisSource};

const TEST: &str = "a_tls_only_server_is_reached_with_the_configured_certificate_authority";

/// Runs openssl with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let status = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl {args:?} failed");
}

/// A CA and a server certificate for `localhost` and 127.0.0.1, in a new directory.
fn certificates() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ruststream-redis-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "1",
            "-subj",
            "/CN=ruststream-test-ca",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "1",
            "-extfile",
            "san.ext",
        ],
    );
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_only_server_is_reached_with_the_configured_certificate_authority() {
    let has_openssl = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !has_openssl {
        missing(TEST, "openssl is not installed (apt-get install openssl)");
        return;
    }
    let certs = certificates();
    let files = certs.clone();
    let Some(server) = ServerProcess::start(TEST, "/usr/bin/redis-server", move |port, dir| {
        let file = |name: &str| files.join(name).into_os_string();
        let mut args: Vec<std::ffi::OsString> = [
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--tls-port",
            &port.to_string(),
        ]
        .map(Into::into)
        .into();
        args.extend(["--tls-cert-file".into(), file("server.crt")]);
        args.extend(["--tls-key-file".into(), file("server.key")]);
        args.extend(["--tls-ca-cert-file".into(), file("ca.crt")]);
        args.extend(
            [
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ]
            .map(Into::into),
        );
        args.push(dir.as_os_str().to_owned());
        args
    })
    .await
    else {
        return;
    };
    let url = format!("rediss://localhost:{}", server.port());

    let broker = RedisBroker::new(
        Config::new(&url)
            .tls(
                Tls::default()
                    .required(true)
                    .root_certificates(certs.join("ca.crt")),
            )
            .connect_timeout(Duration::from_secs(3)),
    );
    broker
        .connect()
        .await
        .expect("connects over TLS with the test's CA");
    let stream = support::fresh_prefix("tls");
    let mut subscriber = RedisSource::stream(&stream)
        .group("tls")
        .subscribe(&broker)
        .await
        .unwrap();
    broker
        .streams()
        .publish(OutgoingMessage::new(&stream, b"over tls"))
        .await
        .unwrap();
    let message = tokio::time::timeout(Duration::from_secs(10), subscriber.next_message())
        .await
        .expect("a message within 10 s")
        .unwrap()
        .unwrap();
    assert_eq!(message.payload(), b"over tls");
    message.ack().await.unwrap();
    broker.shutdown().await.unwrap();

    // Without the CA, the server's certificate is not trusted.
    let untrusted = RedisBroker::new(Config::new(&url).connect_timeout(Duration::from_secs(3)));
    let error = untrusted
        .connect()
        .await
        .expect_err("an unknown CA is refused");
    assert!(error.to_string().contains("cannot connect"), "{error}");
    let _ = std::fs::remove_dir_all(&certs);
}
