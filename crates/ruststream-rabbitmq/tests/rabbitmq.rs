//! RabbitMQ's own behaviour through the crate, live on the shared server: routing by
//! every exchange kind, mandatory publishes, passive declarations, dead-letter
//! exchanges, the redelivered flag and delivery counts, delay queues, properties as
//! headers, and a consumer cancelled by the server. Every test uses fresh names and
//! deletes what it declared.

mod support;

use std::time::Duration;

use ruststream::kit::live::{CleanUp, fresh_name};
use ruststream::{
    Broker, Headers, IncomingMessage, OutgoingMessage, Publisher, Subscriber, SubscriberExt,
    SubscriptionSource,
};
use ruststream_rabbitmq::{
    Config, RETRIES_HEADER, RabbitBroker, RabbitError, RabbitExchange, RabbitMessage, RabbitQueue,
    RabbitSubscriber,
};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

async fn connected(url: &str) -> RabbitBroker {
    let broker = RabbitBroker::new(Config::new(url).connection_name("ruststream-rabbitmq-tests"));
    broker.connect().await.expect("connect to RabbitMQ");
    broker
}

/// Deletes `queues` and `exchanges` when dropped, even if the test panics.
fn clean_up(url: &str, queues: &[&str], exchanges: &[&str]) -> CleanUp {
    let url = url.to_owned();
    let queues: Vec<String> = queues.iter().map(|q| (*q).to_owned()).collect();
    let exchanges: Vec<String> = exchanges.iter().map(|e| (*e).to_owned()).collect();
    CleanUp::new(move || async move {
        let broker = RabbitBroker::new(Config::new(&url));
        if broker.connect().await.is_err() {
            return;
        }
        for queue in &queues {
            let _ = broker.delete_queue(queue).await;
        }
        for exchange in &exchanges {
            let _ = broker.delete_exchange(exchange).await;
        }
        let _ = broker.shutdown().await;
    })
}

async fn next(subscriber: &mut RabbitSubscriber) -> RabbitMessage {
    tokio::time::timeout(WAIT, subscriber.next_message())
        .await
        .expect("a message within 5 s")
        .expect("the stream is open")
        .expect("a message, not an error")
}

async fn silent(subscriber: &mut RabbitSubscriber) {
    if let Ok(Some(Ok(message))) = tokio::time::timeout(QUIET, subscriber.next_message()).await {
        panic!("no message expected, got {:?}", message.payload());
    }
}

async fn publish(publisher: &impl Publisher<Error = RabbitError>, name: &str, payload: &[u8]) {
    publisher
        .publish(OutgoingMessage::new(name, payload))
        .await
        .expect("publish");
}

#[tokio::test]
async fn an_unroutable_mandatory_publish_is_an_error() {
    let test = "an_unroutable_mandatory_publish_is_an_error";
    let Some(url) = support::shared_server(test).await else {
        return;
    };
    let exchange = fresh_name("rs_unroutable");
    let _clean = clean_up(&url, &[], &[&exchange]);
    let broker = connected(&url).await;

    let error = broker
        .publish(OutgoingMessage::new(&fresh_name("nobody"), b"x"))
        .await
        .expect_err("no queue has that name");
    assert!(matches!(error, RabbitError::Unroutable { .. }), "{error}");
    assert!(
        error.to_string().contains("declare and bind the queue"),
        "{error}"
    );

    let topic = broker.publisher(RabbitExchange::topic(&exchange));
    let error = topic
        .publish(OutgoingMessage::new("no.binding", b"x"))
        .await
        .expect_err("nothing is bound");
    assert!(matches!(error, RabbitError::Unroutable { .. }), "{error}");
    let relaxed = topic.clone().mandatory(false);
    publish(&relaxed, "no.binding", b"x").await;
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn topic_bindings_route_by_star_and_hash() {
    let test = "topic_bindings_route_by_star_and_hash";
    let Some(url) = support::shared_server(test).await else {
        return;
    };
    let exchange = fresh_name("rs_topic");
    let (star, hash) = (fresh_name("rs_star"), fresh_name("rs_hash"));
    let _clean = clean_up(&url, &[&star, &hash], &[&exchange]);
    let broker = connected(&url).await;
    let events = RabbitExchange::topic(&exchange).durable(false);
    let mut one_word = RabbitQueue::new(&star)
        .bind(events.clone(), "orders.*")
        .subscribe(&broker)
        .await
        .unwrap();
    let mut any_words = RabbitQueue::new(&hash)
        .bind(events.clone(), "orders.#")
        .subscribe(&broker)
        .await
        .unwrap();
    let publisher = broker.publisher(events).mandatory(false);
    publish(&publisher, "orders.created", b"1").await;
    publish(&publisher, "orders.eu.created", b"2").await;
    publish(&publisher, "orders", b"3").await;
    publish(&publisher, "invoices.created", b"4").await;

    let got = next(&mut one_word).await;
    assert_eq!(got.payload(), b"1");
    assert_eq!(got.routing_key(), "orders.created");
    got.ack().await.unwrap();
    silent(&mut one_word).await;
    for expected in [&b"1"[..], b"2", b"3"] {
        let got = next(&mut any_words).await;
        assert_eq!(got.payload(), expected);
        got.ack().await.unwrap();
    }
    silent(&mut any_words).await;
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_fanout_exchange_reaches_every_bound_queue() {
    let test = "a_fanout_exchange_reaches_every_bound_queue";
    let Some(url) = support::shared_server(test).await else {
        return;
    };
    let exchange = fresh_name("rs_fanout");
    let _clean = clean_up(&url, &[], &[&exchange]);
    let broker = connected(&url).await;
    let everyone = RabbitExchange::fanout(&exchange).auto_delete(true);
    let mut subscribers = Vec::new();
    for _ in 0..3 {
        let queue = RabbitQueue::new("").exclusive().bind(everyone.clone(), "");
        subscribers.push(queue.subscribe(&broker).await.unwrap());
    }
    publish(&broker.publisher(everyone), "any.key", b"hello").await;
    for subscriber in &mut subscribers {
        let got = next(subscriber).await;
        assert_eq!(got.payload(), b"hello");
        assert!(got.queue().starts_with("amq.gen-"), "{}", got.queue());
        got.ack().await.unwrap();
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_headers_exchange_routes_by_all_and_any() {
    let test = "a_headers_exchange_routes_by_all_and_any";
    let Some(url) = support::shared_server(test).await else {
        return;
    };
    let exchange = fresh_name("rs_headers");
    let (all, any) = (fresh_name("rs_all"), fresh_name("rs_any"));
    let _clean = clean_up(&url, &[&all, &any], &[&exchange]);
    let broker = connected(&url).await;
    let by_headers = RabbitExchange::headers(&exchange).durable(false);
    let mut all_of = RabbitQueue::new(&all)
        .bind_headers(
            by_headers.clone(),
            true,
            [("region", "eu"), ("kind", "order")],
        )
        .subscribe(&broker)
        .await
        .unwrap();
    let mut any_of = RabbitQueue::new(&any)
        .bind_headers(
            by_headers.clone(),
            false,
            [("region", "eu"), ("kind", "order")],
        )
        .subscribe(&broker)
        .await
        .unwrap();
    let publisher = broker.publisher(by_headers).mandatory(false);
    let both: Headers = [("region", "eu"), ("kind", "order")].into_iter().collect();
    let one: Headers = [("region", "eu"), ("kind", "refund")].into_iter().collect();
    for (payload, headers) in [(&b"both"[..], &both), (b"one", &one)] {
        publisher
            .publish(OutgoingMessage::new("", payload).with_headers(headers))
            .await
            .unwrap();
    }
    let got = next(&mut all_of).await;
    assert_eq!(got.payload(), b"both");
    assert_eq!(got.headers().get_str("region"), Some("eu"));
    got.ack().await.unwrap();
    silent(&mut all_of).await;
    for expected in [&b"both"[..], b"one"] {
        let got = next(&mut any_of).await;
        assert_eq!(got.payload(), expected);
        got.ack().await.unwrap();
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_passive_queue_that_does_not_exist_fails_naming_it() {
    let test = "a_passive_queue_that_does_not_exist_fails_naming_it";
    let Some(url) = support::shared_server(test).await else {
        return;
    };
    let broker = connected(&url).await;
    let missing = fresh_name("rs_missing");
    let error = RabbitQueue::new(&missing)
        .passive()
        .subscribe(&broker)
        .await
        .expect_err("the queue does not exist");
    let text = error.to_string();
    assert!(
        text.contains(&missing) && text.contains("passive"),
        "{text}"
    );

    // Declared once, the passive check finds it and consumes it as it is.
    let queue = fresh_name("rs_passive");
    let _clean = clean_up(&url, &[&queue], &[]);
    broker
        .declare_queue(&RabbitQueue::new(&queue).max_length(10))
        .await
        .unwrap();
    let mut subscriber = RabbitQueue::new(&queue)
        .passive()
        .subscribe(&broker)
        .await
        .unwrap();
    publish(&broker, &queue, b"there").await;
    next(&mut subscriber).await.ack().await.unwrap();
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn declaring_a_queue_with_other_arguments_names_the_fix() {
    let test = "declaring_a_queue_with_other_arguments_names_the_fix";
    let Some(url) = support::shared_server(test).await else {
        return;
    };
    let queue = fresh_name("rs_mismatch");
    let _clean = clean_up(&url, &[&queue], &[]);
    let broker = connected(&url).await;
    broker
        .declare_queue(&RabbitQueue::new(&queue).max_length(10))
        .await
        .unwrap();
    let error = RabbitQueue::new(&queue)
        .max_length(20)
        .subscribe(&broker)
        .await
        .expect_err("the arguments differ");
    let text = error.to_string();
    assert!(
        text.contains("PRECONDITION_FAILED") && text.contains(".passive()"),
        "{text}"
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn rejected_messages_go_to_the_dead_letter_exchange() {
    let test = "rejected_messages_go_to_the_dead_letter_exchange";
    let Some(url) = support::shared_server(test).await else {
        return;
    };
    let (work, dead, dlx) = (
        fresh_name("rs_work"),
        fresh_name("rs_dead"),
        fresh_name("rs_dlx"),
    );
    let _clean = clean_up(&url, &[&work, &dead], &[&dlx]);
    let broker = connected(&url).await;
    let mut dead_letters = RabbitQueue::new(&dead)
        .bind(RabbitExchange::fanout(&dlx), "")
        .subscribe(&broker)
        .await
        .unwrap();
    let mut worker = RabbitQueue::new(&work)
        .dead_letter_exchange(&dlx)
        .subscribe(&broker)
        .await
        .unwrap();
    publish(&broker, &work, b"poison").await;
    next(&mut worker).await.nack(false).await.unwrap();
    let got = next(&mut dead_letters).await;
    assert_eq!(got.payload(), b"poison");
    assert_eq!(got.routing_key(), work);
    got.ack().await.unwrap();
    silent(&mut worker).await;
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_requeued_message_comes_back_flagged_redelivered() {
    let test = "a_requeued_message_comes_back_flagged_redelivered";
    let Some(url) = support::shared_server(test).await else {
        return;
    };
    let queue = fresh_name("rs_redelivered");
    let _clean = clean_up(&url, &[&queue], &[]);
    let broker = connected(&url).await;
    let mut subscriber = RabbitQueue::new(&queue).subscribe(&broker).await.unwrap();
    assert!(!subscriber.capabilities().redelivery_count);
    publish(&broker, &queue, b"again").await;
    let first = next(&mut subscriber).await;
    assert!(!first.redelivered());
    assert_eq!(
        first.redelivery_count(),
        None,
        "a classic queue does not count"
    );
    first.nack(true).await.unwrap();
    let second = next(&mut subscriber).await;
    assert!(second.redelivered());
    second.ack().await.unwrap();
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_quorum_queue_counts_requeues_and_delayed_retries() {
    let test = "a_quorum_queue_counts_requeues_and_delayed_retries";
    let Some(url) = support::shared_server(test).await else {
        return;
    };
    let queue = fresh_name("rs_quorum");
    let delay_queue = format!("ruststream.delay.200ms.{queue}");
    let _clean = clean_up(&url, &[&queue, &delay_queue], &[]);
    let broker = connected(&url).await;
    let mut subscriber = RabbitQueue::new(&queue)
        .quorum()
        .subscribe(&broker)
        .await
        .unwrap();
    assert!(subscriber.capabilities().redelivery_count);
    assert!(subscriber.capabilities().delayed_requeue);
    publish(&broker, &queue, b"count me").await;
    let first = next(&mut subscriber).await;
    assert_eq!(first.redelivery_count(), Some(0));
    first.nack(true).await.unwrap();
    let second = next(&mut subscriber).await;
    assert_eq!(second.redelivery_count(), Some(1));
    second.nack_after(Duration::from_millis(200)).await.unwrap();
    let third = next(&mut subscriber).await;
    assert_eq!(third.redelivery_count(), Some(2), "{:?}", third.headers());
    assert_eq!(third.headers().get_str(RETRIES_HEADER), Some("2"));
    assert_eq!(third.payload(), b"count me");
    third.ack().await.unwrap();
    silent(&mut subscriber).await;
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_delayed_retry_waits_in_the_server_not_in_the_service() {
    let test = "a_delayed_retry_waits_in_the_server_not_in_the_service";
    let Some(url) = support::shared_server(test).await else {
        return;
    };
    let queue = fresh_name("rs_delayed");
    let delay_queue = format!("ruststream.delay.1500ms.{queue}");
    let _clean = clean_up(&url, &[&queue, &delay_queue], &[]);
    let headers: Headers = [("x-order", "7"), ("content-type", "text/plain")]
        .into_iter()
        .collect();

    let service = connected(&url).await;
    let mut subscriber = RabbitQueue::new(&queue).subscribe(&service).await.unwrap();
    service
        .publish(OutgoingMessage::new(&queue, b"later").with_headers(&headers))
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    next(&mut subscriber)
        .await
        .nack_after(Duration::from_millis(1500))
        .await
        .unwrap();
    // The service goes away during the delay: the copy waits in the server.
    drop(subscriber);
    service.shutdown().await.unwrap();

    let restarted = connected(&url).await;
    let mut subscriber = RabbitQueue::new(&queue)
        .subscribe(&restarted)
        .await
        .unwrap();
    let got = next(&mut subscriber).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(got.payload(), b"later");
    assert_eq!(got.headers().get_str("x-order"), Some("7"));
    assert_eq!(got.headers().get_str("content-type"), Some("text/plain"));
    got.ack().await.unwrap();
    restarted.shutdown().await.unwrap();
}

#[tokio::test]
async fn properties_travel_as_headers() {
    let test = "properties_travel_as_headers";
    let Some(url) = support::shared_server(test).await else {
        return;
    };
    let queue = fresh_name("rs_properties");
    let _clean = clean_up(&url, &[&queue], &[]);
    let broker = connected(&url).await;
    let mut subscriber = RabbitQueue::new(&queue)
        .argument("x-max-priority", 10)
        .subscribe(&broker)
        .await
        .unwrap();
    let headers: Headers = [
        ("content-type", "application/json"),
        ("content-encoding", "utf-8"),
        ("correlation-id", "corr-1"),
        ("message-id", "msg-1"),
        ("timestamp", "1700000000"),
        ("expiration", "60000"),
        ("priority", "5"),
        ("type", "order.created"),
        ("app-id", "shop"),
        ("x-tenant", "acme"),
    ]
    .into_iter()
    .collect();
    broker
        .publish(
            OutgoingMessage::new(&queue, b"{}")
                .with_headers(&headers)
                .with_reply_to("answers"),
        )
        .await
        .unwrap();
    let got = next(&mut subscriber).await;
    for (name, value) in headers.iter() {
        assert_eq!(
            got.headers().get(name),
            Some(value),
            "{name}: {:?}",
            got.headers()
        );
    }
    assert_eq!(got.reply_to(), Some("answers"));
    let properties = got.properties();
    assert_eq!(*properties.priority(), Some(5));
    assert_eq!(
        *properties.delivery_mode(),
        Some(2),
        "persistent by default"
    );
    assert_eq!(
        properties.correlation_id().as_ref().unwrap().as_str(),
        "corr-1"
    );
    got.ack().await.unwrap();
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_consumer_cancelled_by_the_server_ends_with_a_clear_error() {
    let test = "a_consumer_cancelled_by_the_server_ends_with_a_clear_error";
    let Some(url) = support::shared_server(test).await else {
        return;
    };
    let queue = fresh_name("rs_cancelled");
    let _clean = clean_up(&url, &[&queue], &[]);
    let broker = connected(&url).await;
    let mut subscriber = RabbitQueue::new(&queue).subscribe(&broker).await.unwrap();
    broker.delete_queue(&queue).await.unwrap();
    let end = tokio::time::timeout(WAIT, subscriber.next_message())
        .await
        .expect("the stream reports the cancel");
    match end {
        Some(Err(RabbitError::Cancelled {
            queue: named,
            reason,
        })) => {
            assert_eq!(named, queue);
            assert!(reason.contains("cancelled"), "{reason}");
        }
        other => panic!("expected a Cancelled error, got {other:?}"),
    }
    // Subscribing again declares the queue again.
    let mut again = RabbitQueue::new(&queue).subscribe(&broker).await.unwrap();
    publish(&broker, &queue, b"back").await;
    next(&mut again).await.ack().await.unwrap();
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn names_and_headers_amqp_cannot_carry_are_errors_not_panics() {
    let test = "names_and_headers_amqp_cannot_carry_are_errors_not_panics";
    let Some(url) = support::shared_server(test).await else {
        return;
    };
    let broker = connected(&url).await;
    let long = "n".repeat(300);
    let error = broker
        .publish(OutgoingMessage::new(&long, b"x"))
        .await
        .expect_err("a routing key is at most 255 bytes");
    assert!(error.to_string().contains("255"), "{error}");
    let error = RabbitQueue::new(&long)
        .subscribe(&broker)
        .await
        .expect_err("a queue name is at most 255 bytes");
    assert!(error.to_string().contains("255"), "{error}");
    let bad: Headers = [("priority", "urgent")].into_iter().collect();
    let error = broker
        .publish(OutgoingMessage::new("q", b"x").with_headers(&bad))
        .await
        .expect_err("priority is a number");
    assert!(error.to_string().contains("priority"), "{error}");
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_broker_is_not_used_before_connect_or_after_shutdown() {
    let test = "the_broker_is_not_used_before_connect_or_after_shutdown";
    let Some(url) = support::shared_server(test).await else {
        return;
    };
    let broker = RabbitBroker::new(Config::new(&url));
    let error = broker
        .publish(OutgoingMessage::new("q", b"x"))
        .await
        .unwrap_err();
    assert!(matches!(error, RabbitError::NotConnected), "{error}");
    broker.connect().await.unwrap();
    broker
        .connect()
        .await
        .expect("connect again is not an error");
    broker.shutdown().await.unwrap();
    broker
        .shutdown()
        .await
        .expect("a second shutdown returns at once");
    let error = broker
        .publish(OutgoingMessage::new("q", b"x"))
        .await
        .unwrap_err();
    assert!(matches!(error, RabbitError::Closed), "{error}");
}

#[tokio::test]
async fn a_wrong_password_fails_to_connect_without_showing_it() {
    let test = "a_wrong_password_fails_to_connect_without_showing_it";
    let Some(url) = support::shared_server(test).await else {
        return;
    };
    let broker = RabbitBroker::new(Config::new(&url).credentials("guest", "not-the-Pa55word"));
    let error = broker.connect().await.expect_err("the password is wrong");
    let text = format!("{error} {error:?} {broker:?}");
    assert!(!text.contains("not-the-Pa55word"), "{text}");
    assert!(text.contains("credentials"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_subscribes_again_after_the_server_cancels_the_consumer() {
    let test = "the_runtime_subscribes_again_after_the_server_cancels_the_consumer";
    let Some(url) = support::shared_server(test).await else {
        return;
    };
    let queue = fresh_name("rs_resubscribe");
    let _clean = clean_up(&url, &[&queue], &[]);
    let (seen, mut handled) = tokio::sync::mpsc::unbounded_channel::<String>();
    let handler = ruststream::runtime::handler_fn(move |body: String| {
        let seen = seen.clone();
        async move {
            seen.send(body).ok();
        }
    });
    let app = ruststream::runtime::App::new("resubscribe")
        .broker(
            RabbitBroker::new(Config::new(&url)),
            ruststream::runtime::Router::new().subscriber(ruststream::runtime::SubscriberDef::new(
                RabbitQueue::new(&queue),
                handler,
            )),
        )
        .start()
        .await
        .unwrap();
    let producer = connected(&url).await;
    publish(&producer, &queue, br#""first""#).await;
    let first = tokio::time::timeout(WAIT, handled.recv()).await.unwrap();
    assert_eq!(first.as_deref(), Some("first"));

    // The server cancels the consumer: its queue is gone.
    producer.delete_queue(&queue).await.unwrap();
    // Until the runtime has subscribed again (declaring the queue again), a mandatory
    // publish to it is returned unroutable.
    let mut attempts = 0;
    loop {
        match producer
            .publish(OutgoingMessage::new(&queue, br#""second""#))
            .await
        {
            Ok(()) => break,
            Err(RabbitError::Unroutable { .. }) if attempts < 100 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("the queue did not come back: {error}"),
        }
    }
    let second = tokio::time::timeout(WAIT, handled.recv()).await.unwrap();
    assert_eq!(second.as_deref(), Some("second"));
    app.shutdown().await.unwrap();
    // Clean-up, not the behaviour under test: the producer's close has been seen to wait
    // past its 5 s bound for the server's close-ok after a burst of returned messages
    // (a known flake, to be looked into); the queue is deleted either way.
    if let Err(error) = producer.shutdown().await {
        eprintln!("closing the producer: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_handler_retries_through_delay_queues_then_dead_letters() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use ruststream::runtime::{Backoff, FailurePolicy, SubscriberDef, handler_fn};

    let test = "a_failing_handler_retries_through_delay_queues_then_dead_letters";
    let Some(url) = support::shared_server(test).await else {
        return;
    };
    let (work, dead, dlx) = (
        fresh_name("rs_poison"),
        fresh_name("rs_graveyard"),
        fresh_name("rs_dlx"),
    );
    let delay_queues = [100, 200].map(|ms| format!("ruststream.delay.{ms}ms.{work}"));
    let _clean = clean_up(
        &url,
        &[&work, &dead, &delay_queues[0], &delay_queues[1]],
        &[&dlx],
    );
    let broker = connected(&url).await;
    let mut graveyard = RabbitQueue::new(&dead)
        .bind(RabbitExchange::fanout(&dlx), "")
        .subscribe(&broker)
        .await
        .unwrap();

    let calls = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&calls);
    let handler = handler_fn(move |_order: String| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Err::<(), _>(std::io::Error::other("the payment service is down")) }
    });
    let backoff =
        Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1)).jitter(0.0);
    let subscriber = SubscriberDef::new(
        RabbitQueue::new(&work).quorum().dead_letter_exchange(&dlx),
        handler,
    )
    .on_error(FailurePolicy::Backoff(backoff))
    .max_attempts(3);
    let app = ruststream::runtime::App::new("poison")
        .broker(
            RabbitBroker::new(Config::new(&url)),
            ruststream::runtime::Router::new().subscriber(subscriber),
        )
        .start()
        .await
        .unwrap();

    publish(&broker, &work, br#""order 7""#).await;
    // Two delayed retries (100 ms and 200 ms, each in the server), then the third
    // failure exhausts the attempts: nack(false), and the queue's dead-letter exchange
    // takes it.
    let dead_letter = tokio::time::timeout(Duration::from_secs(15), graveyard.next_message())
        .await
        .expect("the dead letter arrives")
        .unwrap()
        .unwrap();
    assert_eq!(dead_letter.payload(), br#""order 7""#);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(dead_letter.headers().get_str(RETRIES_HEADER), Some("2"));
    let table = dead_letter.properties().headers().as_ref().unwrap();
    assert!(table.inner().contains_key("x-death"), "{table:?}");
    dead_letter.ack().await.unwrap();
    app.shutdown().await.unwrap();
    broker.shutdown().await.unwrap();
}
