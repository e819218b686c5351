//! One suite per capability trait: batches, transactions, request-reply, partitioning
//! and server descriptions.

use std::collections::HashMap;

use crate::conformance::harness::{
    Ctx, Inbox, missing, payloads, same_order, same_set, show, show_all,
};
use crate::conformance::report::Failure;
use crate::conformance::target::{ConformanceTarget, HeaderSupport, MessageOf, SubscriberOf};
use crate::{
    BatchSubscriber, DescribeServer, Headers, IncomingMessage, OutgoingMessage, RequestReply,
    Transaction, TransactionalPublisher,
};

const BATCH_MAX: usize = 10;

pub(crate) async fn batches_are_never_empty_and_at_most_max<T>(ctx: Ctx<T>) -> Result<(), Failure>
where
    T: ConformanceTarget,
    SubscriberOf<T>: BatchSubscriber,
{
    let name = ctx.name();
    ctx.step("connect and subscribe in batches of at most 10");
    let broker = ctx.connect().await?;
    let publisher = ctx.target.publisher(&broker);
    let mut inbox = ctx.inbox();
    let subscriber = ctx.subscriber(&broker, &name, ctx.single_mode()).await?;
    inbox.add_batches(subscriber, BATCH_MAX, ctx.caps.quiet_period);

    ctx.step("publish 25 messages");
    let sent = payloads("batched", 25);
    ctx.publish_all(&publisher, &name, &sent).await?;

    ctx.step("receive batches until all 25 arrived");
    let mut got = Vec::new();
    let mut sizes = Vec::new();
    while got.len() < sent.len() {
        let what = format!("a batch ({} of {} messages so far)", got.len(), sent.len());
        let batch = inbox.expect_batch(&what).await.map_err(|mut failure| {
            let got: Vec<&[u8]> = got.iter().map(Vec::as_slice).collect();
            failure.actual.push_str(&missing(&sent, 1, &got));
            failure
        })?;
        sizes.push(batch.len());
        ctx.ensure(
            (1..=BATCH_MAX).contains(&batch.len()),
            format!("a batch of 1 to {BATCH_MAX} messages"),
            || format!("a batch of {} (sizes so far {sizes:?})", batch.len()),
        )?;
        for message in batch {
            got.push(message.payload().to_vec());
            ctx.ack(message).await?;
        }
    }
    let got: Vec<&[u8]> = got.iter().map(Vec::as_slice).collect();
    if ctx.caps.ordering {
        same_order(&ctx.steps, "the batches", &sent, &got)?;
    } else {
        same_set(&ctx.steps, "the batches", &sent, &got)?;
    }
    inbox.expect_silence("every message was acked").await
}

pub(crate) async fn batch_elements_settle_alone<T>(ctx: Ctx<T>) -> Result<(), Failure>
where
    T: ConformanceTarget,
    SubscriberOf<T>: BatchSubscriber,
{
    let name = ctx.name();
    ctx.step("connect and subscribe in batches of at most 10");
    let broker = ctx.connect().await?;
    let publisher = ctx.target.publisher(&broker);
    let mut inbox = ctx.inbox();
    let subscriber = ctx.subscriber(&broker, &name, ctx.single_mode()).await?;
    inbox.add_batches(subscriber, BATCH_MAX, ctx.caps.quiet_period);

    ctx.step("publish 5 messages");
    let sent = payloads("element", 5);
    ctx.publish_all(&publisher, &name, &sent).await?;

    ctx.step("receive them, nack(true) the third and ack the others");
    let mut count = 0;
    while count < sent.len() {
        let what = format!("a batch ({count} of {} messages so far)", sent.len());
        for message in inbox.expect_batch(&what).await? {
            count += 1;
            if message.payload() == sent[2].as_slice() {
                ctx.nack(message, true).await?;
            } else {
                ctx.ack(message).await?;
            }
        }
    }

    ctx.step("only the nacked element comes back");
    let batch = inbox.expect_batch("the nacked element again").await?;
    let got: Vec<&[u8]> = batch.iter().map(IncomingMessage::payload).collect();
    ctx.ensure(
        got == [sent[2].as_slice()],
        format!("a batch of just {}", show(&sent[2])),
        || show_all(got.iter().copied()),
    )?;
    ctx.ack_all(batch).await?;
    inbox.expect_silence("every message was settled").await
}

/// A subscriber and a transaction holding 3 publishes to its name.
struct Staged<T: ConformanceTarget>
where
    T::Publisher: TransactionalPublisher,
{
    name: String,
    inbox: Inbox<MessageOf<T>>,
    publisher: T::Publisher,
    transaction: <T::Publisher as TransactionalPublisher>::Transaction,
    sent: Vec<Vec<u8>>,
}

async fn staged<T>(ctx: &Ctx<T>) -> Result<Staged<T>, Failure>
where
    T: ConformanceTarget,
    T::Publisher: TransactionalPublisher,
{
    let name = ctx.name();
    ctx.step("connect and subscribe");
    let broker = ctx.connect().await?;
    let publisher = ctx.target.publisher(&broker);
    let inbox = ctx.subscribe(&broker, &name, ctx.single_mode()).await?;

    ctx.step("begin a transaction and publish 3 messages in it");
    let mut transaction = ctx
        .within(
            ctx.caps.receive_timeout,
            "begin() to return",
            publisher.begin(),
        )
        .await?
        .map_err(|e| ctx.fail("begin() to succeed", format!("error: {e}")))?;
    let sent = payloads("transaction", 3);
    for payload in &sent {
        ctx.within(
            ctx.caps.receive_timeout,
            "Transaction::publish() to return",
            transaction.publish(OutgoingMessage::new(&name, payload)),
        )
        .await?
        .map_err(|e| ctx.fail("Transaction::publish() to succeed", format!("error: {e}")))?;
    }
    Ok(Staged {
        name,
        inbox,
        publisher,
        transaction,
        sent,
    })
}

/// After an abort or a drop: a plain publish arrives alone.
async fn nothing_from_the_transaction<T>(
    ctx: &Ctx<T>,
    name: &str,
    inbox: &mut Inbox<MessageOf<T>>,
    publisher: &T::Publisher,
) -> Result<(), Failure>
where
    T: ConformanceTarget,
{
    ctx.step("publish a plain message after it");
    ctx.publish(publisher, OutgoingMessage::new(name, b"outside"))
        .await?;
    ctx.step("only the plain message arrives");
    let message = inbox.expect_payload(b"outside").await?;
    ctx.ack(message).await?;
    inbox
        .expect_silence("no publish of the transaction is visible")
        .await
}

pub(crate) async fn transaction_commit_makes_all_visible<T>(ctx: Ctx<T>) -> Result<(), Failure>
where
    T: ConformanceTarget,
    T::Publisher: TransactionalPublisher,
{
    let Staged {
        mut inbox,
        publisher: _publisher,
        transaction,
        sent,
        ..
    } = staged(&ctx).await?;

    ctx.step("nothing is visible before commit");
    inbox
        .expect_silence("the transaction is not committed yet")
        .await?;

    ctx.step("commit");
    ctx.within(
        ctx.caps.receive_timeout,
        "commit() to return",
        transaction.commit(),
    )
    .await?
    .map_err(|e| ctx.fail("commit() to succeed", format!("error: {e}")))?;

    ctx.step("every publish of the transaction arrives");
    let received = inbox
        .expect_each(&sent, 1, "the committed messages")
        .await?;
    let got: Vec<&[u8]> = received.iter().map(|(_, m)| m.payload()).collect();
    if ctx.caps.ordering {
        same_order(&ctx.steps, "the committed messages", &sent, &got)?;
    } else {
        same_set(&ctx.steps, "the committed messages", &sent, &got)?;
    }
    ctx.ack_all(received.into_iter().map(|(_, m)| m)).await?;
    inbox.expect_silence("every message was acked").await
}

pub(crate) async fn transaction_abort_makes_none_visible<T>(ctx: Ctx<T>) -> Result<(), Failure>
where
    T: ConformanceTarget,
    T::Publisher: TransactionalPublisher,
{
    let Staged {
        name,
        mut inbox,
        publisher,
        transaction,
        ..
    } = staged(&ctx).await?;
    ctx.step("abort");
    ctx.within(
        ctx.caps.receive_timeout,
        "abort() to return",
        transaction.abort(),
    )
    .await?
    .map_err(|e| ctx.fail("abort() to succeed", format!("error: {e}")))?;
    nothing_from_the_transaction(&ctx, &name, &mut inbox, &publisher).await
}

pub(crate) async fn transaction_drop_makes_none_visible<T>(ctx: Ctx<T>) -> Result<(), Failure>
where
    T: ConformanceTarget,
    T::Publisher: TransactionalPublisher,
{
    let Staged {
        name,
        mut inbox,
        publisher,
        transaction,
        ..
    } = staged(&ctx).await?;
    ctx.step("drop the transaction unfinished");
    drop(transaction);
    nothing_from_the_transaction(&ctx, &name, &mut inbox, &publisher).await
}

pub(crate) async fn request_is_answered_by_a_responder<T>(ctx: Ctx<T>) -> Result<(), Failure>
where
    T: ConformanceTarget,
    T::Publisher: RequestReply,
{
    let name = ctx.name();
    let with_headers = ctx.stated.headers != HeaderSupport::None;
    ctx.step("connect a responder and a requester");
    let responding = ctx.connect().await?;
    let responder = ctx.target.publisher(&responding);
    let mut inbox = ctx.subscribe(&responding, &name, ctx.single_mode()).await?;
    let requesting = ctx.connect().await?;
    let requester = ctx.target.publisher(&requesting);

    ctx.step("send a request; the responder replies to reply_to()");
    let (request_headers, reply_headers): (Headers, Headers) = if with_headers {
        (
            [("x-conformance-request", "ping")].into_iter().collect(),
            [("x-conformance-reply", "pong")].into_iter().collect(),
        )
    } else {
        (Headers::new(), Headers::new())
    };
    let request = requester.request(
        OutgoingMessage::new(&name, b"ping").with_headers(&request_headers),
        ctx.caps.receive_timeout,
    );
    let respond = async {
        let message = inbox.expect_payload(b"ping").await?;
        if with_headers {
            let got = message.headers().get("x-conformance-request");
            ctx.ensure(
                got == Some(&b"ping"[..]),
                "the request's header x-conformance-request = \"ping\"",
                || format!("{:?}", message.headers()),
            )?;
        }
        let Some(reply_to) = message.reply_to().map(str::to_owned) else {
            return Err(ctx.fail("reply_to() on the request to be Some", "None"));
        };
        ctx.publish(
            &responder,
            OutgoingMessage::new(&reply_to, b"pong").with_headers(&reply_headers),
        )
        .await?;
        ctx.ack(message).await
    };
    let limit = ctx.caps.receive_timeout * 2;
    let (reply, responded) = ctx
        .within(limit, "the request and its reply", async {
            tokio::join!(request, respond)
        })
        .await?;
    responded?;

    ctx.step("the reply carries the responder's payload and headers");
    let reply =
        reply.map_err(|e| ctx.fail("request() to return the reply", format!("error: {e}")))?;
    ctx.ensure(
        reply.payload.as_ref() == b"pong",
        "the reply payload \"pong\"",
        || show(&reply.payload),
    )?;
    if with_headers {
        let got = reply.headers.get("x-conformance-reply");
        ctx.ensure(
            got == Some(&b"pong"[..]),
            "the reply header x-conformance-reply = \"pong\"",
            || format!("{:?}", reply.headers),
        )?;
    }
    Ok(())
}

pub(crate) async fn unanswered_request_errors_within_timeout<T>(ctx: Ctx<T>) -> Result<(), Failure>
where
    T: ConformanceTarget,
    T::Publisher: RequestReply,
{
    let timeout = ctx.caps.quiet_period;
    let limit = timeout + ctx.caps.receive_timeout;
    ctx.step("connect");
    let broker = ctx.connect().await?;
    let requester = ctx.target.publisher(&broker);

    ctx.step(format!(
        "a request to a name nobody subscribes to, timeout {timeout:?}"
    ));
    let nobody = ctx.name();
    let result = ctx
        .within(
            limit,
            "request() to return",
            requester.request(OutgoingMessage::new(&nobody, b"anyone?"), timeout),
        )
        .await?;
    if let Ok(reply) = result {
        return Err(ctx.fail("an error", format!("a reply {}", show(&reply.payload))));
    }

    ctx.step(format!(
        "a request to a subscriber that never replies, timeout {timeout:?}"
    ));
    let name = ctx.name();
    let listening = ctx.connect().await?;
    let mut inbox = ctx.subscribe(&listening, &name, ctx.single_mode()).await?;
    let request = requester.request(OutgoingMessage::new(&name, b"hello?"), timeout);
    let listen = async {
        let message = inbox.expect_payload(b"hello?").await?;
        ctx.ack(message).await
    };
    let (result, listened) = ctx
        .within(limit, "request() to return", async {
            tokio::join!(request, listen)
        })
        .await?;
    listened?;
    match result {
        Ok(reply) => Err(ctx.fail("an error", format!("a reply {}", show(&reply.payload)))),
        Err(_) => Ok(()),
    }
}

pub(crate) async fn partition_key_is_delivered<T>(ctx: Ctx<T>) -> Result<(), Failure>
where
    T: ConformanceTarget,
    T::Publisher: crate::Partitioned,
{
    let name = ctx.name();
    ctx.step("connect and subscribe");
    let broker = ctx.connect().await?;
    let publisher = ctx.target.publisher(&broker);
    let mut inbox = ctx.subscribe(&broker, &name, ctx.single_mode()).await?;

    ctx.step("publish a message with the key \"customer-42\"");
    ctx.publish(
        &publisher,
        OutgoingMessage::new(&name, b"keyed").with_key(b"customer-42"),
    )
    .await?;

    ctx.step("partition_key() returns the key");
    let message = inbox.expect_payload(b"keyed").await?;
    let key = message.partition_key().map(<[u8]>::to_vec);
    ctx.ensure(
        key.as_deref() == Some(&b"customer-42"[..]),
        "partition_key() = Some(\"customer-42\")",
        || format!("{:?}", key.as_deref().map(String::from_utf8_lossy)),
    )?;
    ctx.ack(message).await
}

pub(crate) async fn order_is_kept_per_key<T>(ctx: Ctx<T>) -> Result<(), Failure>
where
    T: ConformanceTarget,
    T::Publisher: crate::Partitioned,
{
    const KEYS: [&str; 3] = ["key-a", "key-b", "key-c"];
    const EACH: usize = 20;
    let name = ctx.name();
    ctx.step("connect and subscribe");
    let broker = ctx.connect().await?;
    let publisher = ctx.target.publisher(&broker);
    let mut inbox = ctx.subscribe(&broker, &name, ctx.single_mode()).await?;

    ctx.step("publish 20 messages for each of 3 keys, interleaved");
    let mut expected: HashMap<&str, Vec<Vec<u8>>> = HashMap::new();
    for i in 0..EACH {
        for key in KEYS {
            let payload = format!("{key}-{i:04}").into_bytes();
            ctx.publish(
                &publisher,
                OutgoingMessage::new(&name, &payload).with_key(key.as_bytes()),
            )
            .await?;
            expected.entry(key).or_default().push(payload);
        }
    }

    ctx.step("receive every message");
    let all: Vec<Vec<u8>> = expected.values().flatten().cloned().collect();
    let received = inbox.expect_each(&all, 1, "the keyed messages").await?;

    ctx.step("each key's messages arrive in publish order with their key");
    for key in KEYS {
        let mut own: Vec<&[u8]> = Vec::new();
        for (_, message) in &received {
            if message.payload().starts_with(key.as_bytes()) {
                ctx.ensure(
                    message.partition_key() == Some(key.as_bytes()),
                    format!(
                        "partition_key() = Some({key:?}) on {}",
                        show(message.payload())
                    ),
                    || format!("{:?}", message.partition_key().map(String::from_utf8_lossy)),
                )?;
                own.push(message.payload());
            }
        }
        let sent = expected.remove(key).unwrap_or_default();
        same_order(&ctx.steps, &format!("key {key:?}"), &sent, &own)?;
    }
    ctx.ack_all(received.into_iter().map(|(_, m)| m)).await
}

fn check_spec<T: ConformanceTarget>(ctx: &Ctx<T>, spec: &crate::ServerSpec) -> Result<(), Failure> {
    ctx.ensure(!spec.protocol.is_empty(), "a non-empty protocol", || {
        format!("{spec:?}")
    })?;
    ctx.ensure(!spec.host.is_empty(), "a non-empty host", || {
        format!("{spec:?}")
    })?;
    ctx.no_credentials("the ServerSpec's Debug", &format!("{spec:?}"))?;
    #[cfg(feature = "bindings")]
    if let Some(bindings) = &spec.bindings {
        ctx.no_credentials("the ServerSpec's bindings", &bindings.to_string())?;
    }
    Ok(())
}

pub(crate) async fn server_description_has_no_credentials<T>(ctx: Ctx<T>) -> Result<(), Failure>
where
    T: ConformanceTarget,
    T::Broker: DescribeServer,
{
    ctx.step("describe_server() before connect");
    let broker = ctx
        .within(
            ctx.caps.receive_timeout,
            "broker() to return",
            ctx.target.broker(),
        )
        .await?;
    check_spec(&ctx, &broker.describe_server())?;

    ctx.step("describe_server() after connect");
    let broker = ctx.connect().await?;
    check_spec(&ctx, &broker.describe_server())
}
