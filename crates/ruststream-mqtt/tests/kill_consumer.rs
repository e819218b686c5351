//! kill -9 of a consuming service process with a persistent session at QoS 1: no message
//! is lost. The service is this test binary run again as a child process (the ignored
//! test `consumer_process`), which records each message in a file before acknowledging
//! it; a message is lost if no record of it exists after the service came back.

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use ruststream::kit::live::fresh_name;
use ruststream::{
    Broker, IncomingMessage, OutgoingMessage, Publisher, SubscriberExt, SubscriptionSource,
};
use ruststream_mqtt::{Config, MqttBroker, MqttSource, Protocol, Qos};

const MESSAGES: usize = 300;

/// The child: consumes `RS_KILL_TOPIC` with the persistent session `RS_KILL_CLIENT`,
/// appending each payload to `RS_KILL_FILE` (flushed) before acknowledging it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by kill_minus_9_of_a_consumer_loses_no_qos1_message"]
async fn consumer_process() {
    let var = |name| std::env::var(name).expect("run by the parent test");
    let (host, port) = (var("RS_KILL_HOST"), var("RS_KILL_PORT").parse().unwrap());
    let config = Config::new(Protocol::V5, host, port, var("RS_KILL_CLIENT"))
        .persistent_session(Duration::from_secs(600));
    let broker = MqttBroker::new(config);
    broker.connect().await.expect("connect");
    let mut subscriber = MqttSource::new(var("RS_KILL_TOPIC"))
        .qos(Qos::AtLeastOnce)
        .subscribe(&broker)
        .await
        .expect("subscribe");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(var("RS_KILL_FILE"))
        .expect("the record file");
    println!("READY");
    while let Some(message) = subscriber.next_message().await {
        let message = message.expect("message");
        file.write_all(message.payload()).unwrap();
        file.write_all(b"\n").unwrap();
        file.flush().unwrap();
        // Slow enough that the kill lands in the middle.
        tokio::time::sleep(Duration::from_millis(2)).await;
        message.ack().await.expect("ack");
    }
}

async fn start_consumer(env: &[(&str, String)]) -> tokio::process::Child {
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "consumer_process", "--ignored", "--nocapture"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the consumer process");
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("READY") {
                return;
            }
        }
        panic!("the consumer process ended before it was ready");
    })
    .await
    .expect("the consumer is ready within 30 s");
    // Keep reading its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

fn recorded(path: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_minus_9_of_a_consumer_loses_no_qos1_message() {
    let test = "kill_minus_9_of_a_consumer_loses_no_qos1_message";
    let Some(server) = support::shared_server(test).await else {
        return;
    };
    let client = fresh_name("rs_kill");
    let topic = format!("kill/{}", fresh_name("jobs"));
    let file = std::env::temp_dir().join(format!("{}.txt", fresh_name("rs_kill_record")));
    let env = [
        ("RS_KILL_HOST", server.0.clone()),
        ("RS_KILL_PORT", server.1.to_string()),
        ("RS_KILL_CLIENT", client.clone()),
        ("RS_KILL_TOPIC", topic.clone()),
        ("RS_KILL_FILE", file.display().to_string()),
    ];
    let mut consumer = start_consumer(&env).await;

    let publisher = MqttBroker::new(support::config(
        &server,
        Protocol::V5,
        &fresh_name("rs_kill_pub"),
    ));
    publisher.connect().await.unwrap();
    let expected: BTreeSet<String> = (0..MESSAGES).map(|n| format!("job-{n:04}")).collect();
    let mut killed = false;
    for (n, payload) in expected.iter().enumerate() {
        publisher
            .publish(OutgoingMessage::new(&topic, payload.as_bytes()))
            .await
            .expect("publish at QoS 1");
        if n == MESSAGES / 3 {
            // Wait until it is consuming, then SIGKILL it with messages in hand.
            while recorded(&file).len() < 20 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            consumer.start_kill().unwrap();
            consumer.wait().await.unwrap();
            killed = true;
        }
    }
    assert!(killed);
    let before = recorded(&file).len();
    assert!(before < MESSAGES, "the kill happened before the end");

    let mut consumer = start_consumer(&env).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = recorded(&file);
        if got.is_superset(&expected) {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let lost: Vec<&String> = expected.difference(&got).take(20).collect();
            panic!(
                "{} messages lost after kill -9, e.g. {lost:?}",
                expected.difference(&got).count()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    consumer.start_kill().unwrap();
    let _ = consumer.wait().await;
    publisher.shutdown().await.unwrap();
    let _ = std::fs::remove_file(&file);
    // End the session on the server.
    let clean = MqttBroker::new(support::config(&server, Protocol::V5, &client));
    clean.connect().await.unwrap();
    clean.shutdown().await.unwrap();
}
