//! `#[subscriber]` end to end on the memory broker, and the `cli` functions that
//! `#[ruststream::app]` calls.
#![cfg(all(feature = "macros", feature = "memory"))]

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ruststream::memory::{MemoryBroker, MemorySource};
use ruststream::prelude::*;
use ruststream::runtime::{
    App, DEAD_LETTER_REASON_HEADER, Format, Message, Producer, Raw, Router, RunningApp, Settle,
    State, SubscriberDef, Text,
};
use ruststream::subscriber;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Order {
    id: u64,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Quote {
    id: u64,
    price: u64,
}

/// What the handlers saw, shared as app state.
#[derive(Default)]
struct Seen {
    sum: AtomicU32,
    calls: AtomicU32,
    log: Mutex<Vec<String>>,
}

impl Seen {
    fn record(&self, line: impl Into<String>) {
        self.log.lock().unwrap().push(line.into());
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

const WAIT: Duration = Duration::from_secs(5);

async fn eventually(check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in time"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn start(
    broker: &MemoryBroker,
    seen: &Arc<Seen>,
    router: Router<MemoryBroker>,
) -> RunningApp {
    App::new("macros")
        .state_arc(Arc::clone(seen))
        .broker(broker.clone(), router)
        .start()
        .await
        .unwrap()
}

/// Adds each order's id to the sum.
#[subscriber("orders")]
async fn handle_order(order: Order, seen: State<Seen>) {
    seen.sum.fetch_add(order.id as u32, Ordering::SeqCst);
}

#[tokio::test]
async fn a_decoded_payload_reaches_the_handler() {
    let broker = MemoryBroker::new();
    let seen = Arc::new(Seen::default());
    let running = start(&broker, &seen, Router::new().subscriber(handle_order)).await;
    let producer = Producer::new(broker.clone());
    producer.publish("orders", &Order { id: 3 }).await.unwrap();
    producer.publish("orders", &Order { id: 4 }).await.unwrap();
    eventually(|| seen.sum.load(Ordering::SeqCst) == 7).await;
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_function_can_be_called_directly() {
    let seen = Arc::new(Seen::default());
    handle_order
        .handle(Order { id: 5 }, State(Arc::clone(&seen)))
        .await;
    assert_eq!(seen.sum.load(Ordering::SeqCst), 5);
}

#[subscriber("raw")]
async fn raw_bytes(payload: Raw<'_>, seen: State<Seen>) {
    seen.record(format!("raw {}", payload.len()));
}

#[subscriber("text")]
async fn text_and_headers(text: Text<'_>, headers: &Headers, seen: State<Seen>) {
    let trace = headers.get_str("trace").unwrap_or("none");
    seen.record(format!("text {} trace {trace}", &*text));
}

#[subscriber("whole")]
async fn whole_message(message: Message<'_>, seen: State<Seen>) {
    seen.record(format!(
        "message {} on {} for {} attempt {}",
        message.payload().len(),
        message.name().unwrap_or("?"),
        message.handler(),
        message.attempt()
    ));
}

#[tokio::test]
async fn borrowing_extractors_see_the_delivery() {
    let broker = MemoryBroker::new();
    let seen = Arc::new(Seen::default());
    let router = Router::new()
        .subscriber(raw_bytes)
        .subscriber(text_and_headers)
        .subscriber(whole_message);
    let running = start(&broker, &seen, router).await;
    let producer = Producer::new(broker.clone());
    producer.publish("raw", &Order { id: 1 }).await.unwrap();
    producer
        .message("text", "hello")
        .header("trace", "t-1")
        .send()
        .await
        .unwrap();
    producer.publish("whole", &Order { id: 1 }).await.unwrap();
    eventually(|| seen.lines().len() == 3).await;
    let mut lines = seen.lines();
    lines.sort();
    assert_eq!(
        lines,
        [
            "message 8 on whole for whole_message attempt 1",
            "raw 8",
            "text \"hello\" trace t-1",
        ]
    );
    running.shutdown().await.unwrap();
}

#[subscriber("quote")]
async fn quote_order(order: Order) -> Quote {
    Quote {
        id: order.id,
        price: order.id * 10,
    }
}

#[tokio::test]
async fn a_returned_value_answers_the_request() {
    let broker = MemoryBroker::new();
    let seen = Arc::new(Seen::default());
    let running = start(&broker, &seen, Router::new().subscriber(quote_order)).await;
    let reply: Quote = Producer::new(broker.clone())
        .message("quote", &Order { id: 4 })
        .request(WAIT)
        .await
        .unwrap();
    assert_eq!(reply, Quote { id: 4, price: 40 });
    running.shutdown().await.unwrap();
}

/// Fails on the first attempt, then quotes.
#[subscriber("flaky.quote", on_error = Retry)]
async fn flaky_quote(order: Order, seen: State<Seen>) -> Result<Quote, String> {
    if seen.calls.fetch_add(1, Ordering::SeqCst) == 0 {
        return Err(format!("order {} is not ready", order.id));
    }
    Ok(Quote {
        id: order.id,
        price: 1,
    })
}

#[tokio::test]
async fn a_result_replies_on_ok_and_retries_on_err() {
    let broker = MemoryBroker::new();
    let seen = Arc::new(Seen::default());
    let running = start(&broker, &seen, Router::new().subscriber(flaky_quote)).await;
    let reply: Quote = Producer::new(broker.clone())
        .message("flaky.quote", &Order { id: 9 })
        .request(WAIT)
        .await
        .unwrap();
    assert_eq!(reply, Quote { id: 9, price: 1 });
    assert_eq!(seen.calls.load(Ordering::SeqCst), 2);
    running.shutdown().await.unwrap();
}

#[subscriber("settle")]
async fn settle_explicitly(message: Message<'_>, seen: State<Seen>) -> Settle {
    seen.calls.fetch_add(1, Ordering::SeqCst);
    if message.attempt() == 1 {
        Settle::Retry
    } else {
        seen.record("acked");
        Settle::Ack
    }
}

#[tokio::test]
async fn a_handler_result_settles_as_it_says() {
    let broker = MemoryBroker::new();
    let seen = Arc::new(Seen::default());
    let running = start(&broker, &seen, Router::new().subscriber(settle_explicitly)).await;
    Producer::new(broker.clone())
        .publish("settle", &Order { id: 1 })
        .await
        .unwrap();
    eventually(|| seen.lines() == ["acked"]).await;
    assert_eq!(seen.calls.load(Ordering::SeqCst), 2);
    running.shutdown().await.unwrap();
}

/// Four at once: each waits until all four are in.
#[subscriber("parallel", workers = 4)]
async fn parallel(_order: Order, barrier: State<tokio::sync::Barrier>, seen: State<Seen>) {
    barrier.wait().await;
    seen.calls.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test]
async fn workers_handle_messages_at_once() {
    let broker = MemoryBroker::new();
    let seen = Arc::new(Seen::default());
    let running = App::new("workers")
        .state_arc(Arc::clone(&seen))
        .state(tokio::sync::Barrier::new(4))
        .broker(broker.clone(), Router::new().subscriber(parallel))
        .start()
        .await
        .unwrap();
    let producer = Producer::new(broker.clone());
    for id in 0..4 {
        producer.publish("parallel", &Order { id }).await.unwrap();
    }
    eventually(|| seen.calls.load(Ordering::SeqCst) == 4).await;
    running.shutdown().await.unwrap();
}

#[derive(Debug, Serialize, Deserialize)]
struct Step {
    key: String,
    seq: u32,
}

#[subscriber("steps", workers = 8, by_key)]
async fn ordered_steps(step: Step, seen: State<Seen>) {
    // Later steps of a key finish sooner, so only the lanes keep them in order.
    tokio::time::sleep(Duration::from_millis(u64::from(10 - step.seq % 10))).await;
    seen.record(format!("{} {}", step.key, step.seq));
}

#[tokio::test]
async fn by_key_workers_keep_per_key_order() {
    let broker = MemoryBroker::new();
    let seen = Arc::new(Seen::default());
    let running = start(&broker, &seen, Router::new().subscriber(ordered_steps)).await;
    let producer = Producer::new(broker.clone());
    let keys = ["a", "b", "c"];
    for seq in 0..10 {
        for key in keys {
            let step = Step {
                key: key.to_owned(),
                seq,
            };
            producer
                .message("steps", &step)
                .key(key.as_bytes())
                .send()
                .await
                .unwrap();
        }
    }
    eventually(|| seen.lines().len() == 30).await;
    let lines = seen.lines();
    for key in keys {
        let seqs: Vec<u32> = lines
            .iter()
            .filter_map(|line| line.strip_prefix(&format!("{key} ")))
            .map(|seq| seq.parse().unwrap())
            .collect();
        assert_eq!(seqs, (0..10).collect::<Vec<_>>(), "key {key}");
    }
    running.shutdown().await.unwrap();
}

#[subscriber("jobs", on_error = Retry, max_attempts = 3, dead_letter = "jobs.dead")]
async fn poison(_order: Order, seen: State<Seen>) -> Result<(), &'static str> {
    seen.calls.fetch_add(1, Ordering::SeqCst);
    Err("always fails")
}

#[tokio::test]
async fn max_attempts_and_dead_letter_catch_a_poison_message() {
    let broker = MemoryBroker::new();
    let seen = Arc::new(Seen::default());
    let running = start(&broker, &seen, Router::new().subscriber(poison)).await;
    let mut dead = broker.subscribe("jobs.dead").await.unwrap();
    Producer::new(broker.clone())
        .publish("jobs", &Order { id: 1 })
        .await
        .unwrap();
    let message = tokio::time::timeout(WAIT, dead.next_message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(seen.calls.load(Ordering::SeqCst), 3);
    let reason = message
        .headers()
        .get_str(DEAD_LETTER_REASON_HEADER)
        .unwrap();
    assert!(reason.contains("always fails"), "{reason}");
    running.shutdown().await.unwrap();
}

#[subscriber(MemorySource::new("created").group("billing"))]
async fn grouped(order: Order, seen: State<Seen>) {
    seen.sum.fetch_add(order.id as u32, Ordering::SeqCst);
}

#[tokio::test]
async fn a_descriptor_source_takes_the_router_prefix() {
    let broker = MemoryBroker::new();
    let seen = Arc::new(Seen::default());
    let router = Router::with_prefix("orders.").subscriber(grouped);
    let running = start(&broker, &seen, router).await;
    Producer::new(broker.clone())
        .publish("orders.created", &Order { id: 2 })
        .await
        .unwrap();
    eventually(|| seen.sum.load(Ordering::SeqCst) == 2).await;
    running.shutdown().await.unwrap();
}

#[subscriber("priced", publish_to = "priced.audit", publish_to = "priced.log")]
async fn priced(order: Order) -> Quote {
    Quote {
        id: order.id,
        price: 7,
    }
}

#[tokio::test]
async fn publish_to_sends_the_returned_value_to_each_destination() {
    let broker = MemoryBroker::new();
    let seen = Arc::new(Seen::default());
    let running = start(&broker, &seen, Router::new().subscriber(priced)).await;
    let mut audit = broker.subscribe("priced.audit").await.unwrap();
    let mut log = broker.subscribe("priced.log").await.unwrap();
    Producer::new(broker.clone())
        .publish("priced", &Order { id: 3 })
        .await
        .unwrap();
    for subscription in [&mut audit, &mut log] {
        let message = tokio::time::timeout(WAIT, subscription.next_message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let quote: Quote = serde_json::from_slice(message.payload()).unwrap();
        assert_eq!(quote, Quote { id: 3, price: 7 });
    }
    running.shutdown().await.unwrap();
}

/// Too slow for its timeout layer.
#[subscriber(
    "slow",
    layer = tower::timeout::TimeoutLayer::new(Duration::from_millis(20)),
    on_error = DeadLetter,
    dead_letter = "slow.dead"
)]
async fn too_slow(_order: Order) {
    tokio::time::sleep(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_layer_wraps_the_handler() {
    let broker = MemoryBroker::new();
    let seen = Arc::new(Seen::default());
    let running = start(&broker, &seen, Router::new().subscriber(too_slow)).await;
    let mut dead = broker.subscribe("slow.dead").await.unwrap();
    Producer::new(broker.clone())
        .publish("slow", &Order { id: 1 })
        .await
        .unwrap();
    let message = tokio::time::timeout(WAIT, dead.next_message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let reason = message
        .headers()
        .get_str(DEAD_LETTER_REASON_HEADER)
        .unwrap();
    assert!(reason.contains("timed out"), "{reason}");
    running.shutdown().await.unwrap();
}

/// Takes every option.
#[subscriber(
    "everything",
    name = "all_options",
    workers = 3,
    by_key,
    codec = Format::Json,
    on_decode_error = DeadLetter,
    on_error = ruststream::runtime::FailurePolicy::Retry,
    on_panic = Drop,
    max_attempts = 4,
    dead_letter = "everything.dead",
    publish_to = "everything.out",
    description = "Documented by its option.",
)]
async fn every_option(_order: Order) {}

#[test]
fn options_reach_the_subscriber_definition() {
    let app = App::new("options").broker(
        MemoryBroker::new(),
        Router::with_prefix("p.")
            .subscriber(every_option)
            .subscriber(handle_order),
    );
    let description = app.describe();
    let subscribers = &description.brokers[0].subscribers;
    let all = &subscribers[0];
    assert_eq!(all.handler, "all_options");
    assert_eq!(all.destination, "p.everything");
    assert_eq!(all.workers, 3);
    assert!(all.by_key);
    assert_eq!(all.format, Format::Json);
    assert_eq!(all.dead_letter.as_deref(), Some("everything.dead"));
    assert_eq!(all.publish_to, ["everything.out"]);
    assert_eq!(
        all.description.as_deref(),
        Some("Documented by its option.")
    );
    let default = &subscribers[1];
    assert_eq!(default.handler, "handle_order");
    assert_eq!(default.workers, 1);
    assert!(!default.by_key);
    assert_eq!(
        default.description.as_deref(),
        Some("Adds each order's id to the sum.")
    );
}

#[cfg(feature = "msgpack")]
mod msgpack {
    use super::*;

    #[subscriber("packed", format = MsgPack)]
    async fn packed(order: Order, seen: State<Seen>) {
        seen.sum.fetch_add(order.id as u32, Ordering::SeqCst);
    }

    #[tokio::test]
    async fn the_format_option_decodes_with_that_format() {
        let broker = MemoryBroker::new();
        let seen = Arc::new(Seen::default());
        let running = start(&broker, &seen, Router::new().subscriber(packed)).await;
        Producer::new(broker.clone())
            .with_format(Format::MsgPack)
            .publish("packed", &Order { id: 6 })
            .await
            .unwrap();
        eventually(|| seen.sum.load(Ordering::SeqCst) == 6).await;
        running.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_macro_handler_mounts_by_hand_on_another_source() {
    let broker = MemoryBroker::new();
    let seen = Arc::new(Seen::default());
    let router = Router::new()
        .subscriber(SubscriberDef::new(String::from("elsewhere"), handle_order).workers(2));
    let running = start(&broker, &seen, router).await;
    Producer::new(broker.clone())
        .publish("elsewhere", &Order { id: 8 })
        .await
        .unwrap();
    eventually(|| seen.sum.load(Ordering::SeqCst) == 8).await;
    running.shutdown().await.unwrap();
}

#[test]
fn the_generated_item_prints_as_the_function_name() {
    assert_eq!(format!("{handle_order:?}"), "handle_order");
}

#[cfg(feature = "cli")]
mod cli {
    use super::*;
    use ruststream::cli::{self, Command, DocFormat};

    fn service() -> App {
        App::new("orders service")
            .version("2.1.0")
            .description("Takes orders.")
            .broker(
                MemoryBroker::new(),
                Router::new()
                    .subscriber(handle_order)
                    .subscriber(priced)
                    .subscriber(grouped),
            )
    }

    async fn service_async() -> App {
        service()
    }

    #[test]
    fn commands_parse() {
        assert_eq!(
            Command::parse_from(["svc", "run"]).unwrap(),
            Command::Run { http: None }
        );
        assert_eq!(
            Command::parse_from(["svc", "run", "--http", "127.0.0.1:9000"]).unwrap(),
            Command::Run {
                http: Some("127.0.0.1:9000".parse().unwrap())
            }
        );
        assert_eq!(
            Command::parse_from(["svc", "asyncapi", "gen"]).unwrap(),
            Command::AsyncApiGen {
                format: DocFormat::Json,
                output: None
            }
        );
        assert_eq!(
            Command::parse_from([
                "svc", "asyncapi", "gen", "--format", "yaml", "-o", "doc.yaml"
            ])
            .unwrap(),
            Command::AsyncApiGen {
                format: DocFormat::Yaml,
                output: Some("doc.yaml".into())
            }
        );
        assert_eq!(
            Command::parse_from(["svc", "--version"]).unwrap(),
            Command::Version
        );
    }

    #[test]
    fn help_is_not_an_error_and_nonsense_is() {
        let help = Command::parse_from(["svc", "--help"]).unwrap_err();
        assert!(help.is_help());
        let text = help.to_string();
        assert!(text.contains("run") && text.contains("asyncapi"), "{text}");

        let missing = Command::parse_from(["svc"]).unwrap_err();
        assert!(!missing.is_help());
        assert!(
            missing.to_string().contains("a command is needed"),
            "{missing}"
        );

        let bad = Command::parse_from(["svc", "asyncapi", "gen", "--format", "xml"]).unwrap_err();
        assert!(!bad.is_help());
        assert!(bad.to_string().contains("xml"), "{bad}");
    }

    #[test]
    fn the_json_document_names_every_channel() {
        let text = cli::render(&service(), DocFormat::Json).unwrap();
        let document: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(document["asyncapi"], "3.0.0");
        assert_eq!(document["info"]["title"], "orders service");
        assert_eq!(document["info"]["version"], "2.1.0");
        assert_eq!(document["info"]["description"], "Takes orders.");
        let mut addresses: Vec<&str> = document["channels"]
            .as_object()
            .unwrap()
            .values()
            .map(|channel| channel["address"].as_str().unwrap())
            .collect();
        addresses.sort_unstable();
        assert_eq!(
            addresses,
            ["created", "orders", "priced", "priced.audit", "priced.log"]
        );
        let operations = document["operations"].as_object().unwrap();
        let receive = &operations["handle_order"];
        assert_eq!(receive["action"], "receive");
        assert_eq!(receive["channel"]["$ref"], "#/channels/orders");
        assert_eq!(receive["description"], "Adds each order's id to the sum.");
        let send = &operations["priced_to_priced_audit"];
        assert_eq!(send["action"], "send");
        let message = &document["channels"]["orders"]["messages"]["handle_order"];
        assert_eq!(message["contentType"], "application/json");
    }

    #[test]
    fn the_yaml_document_says_the_same() {
        let text = cli::render(&service(), DocFormat::Yaml).unwrap();
        assert!(text.contains("asyncapi: \"3.0.0\""), "{text}");
        assert!(text.contains("address: priced.audit"), "{text}");
    }

    #[test]
    fn asyncapi_gen_writes_the_document_to_a_file() {
        let path = std::env::temp_dir().join(format!(
            "ruststream-asyncapi-{}-{}.json",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let command = Command::parse_from([
            "svc".as_ref(),
            "asyncapi".as_ref(),
            "gen".as_ref(),
            "--output".as_ref(),
            path.as_os_str(),
        ])
        .unwrap();
        cli::execute(command, service_async).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let document: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(document["info"]["title"], "orders service");
    }

    #[test]
    fn a_usage_error_exits_with_2() {
        let code = cli::main_from(["svc", "launch"], service);
        assert_eq!(code, std::process::ExitCode::from(2));
    }

    static COUNTER: AtomicUsize = AtomicUsize::new(0);
}

/// The sizes of the batches `take_orders` was called with.
static ORDER_BATCHES: Mutex<Vec<Vec<u64>>> = Mutex::new(Vec::new());

/// Takes orders in batches; order 0 fails on its own.
#[subscriber("orders.batched", batch = 4, max_wait = "5s", name = "take_orders", on_error = Drop)]
async fn take_orders(orders: Vec<Order>) -> Vec<Result<(), String>> {
    ORDER_BATCHES
        .lock()
        .unwrap()
        .push(orders.iter().map(|o| o.id).collect());
    orders
        .iter()
        .map(|o| {
            if o.id == 0 {
                Err("order 0".to_owned())
            } else {
                Ok(())
            }
        })
        .collect()
}

#[tokio::test]
async fn a_batch_subscriber_takes_a_vec_of_payloads() {
    let broker = MemoryBroker::new();
    let running = App::new("batched")
        .broker(broker.clone(), Router::new().subscriber(take_orders))
        .start()
        .await
        .unwrap();
    let producer = Producer::new(broker.clone());
    for id in [3, 0, 1, 2] {
        producer
            .publish("orders.batched", &Order { id })
            .await
            .unwrap();
    }
    eventually(|| !ORDER_BATCHES.lock().unwrap().is_empty()).await;
    assert_eq!(*ORDER_BATCHES.lock().unwrap(), [vec![3, 0, 1, 2]]);
    running.shutdown().await.unwrap();
    // The function stays callable as written.
    assert_eq!(
        take_orders.handle(vec![Order { id: 0 }]).await,
        [Err("order 0".to_owned())]
    );
}
