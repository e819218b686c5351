//! Delivery: round trips, headers, ordering, isolation, fan-out, competing consumers and
//! concurrent publishers.

use std::collections::HashMap;

use tokio::task::JoinSet;

use crate::conformance::harness::{Ctx, missing, payloads, same_order, same_set, show};
use crate::conformance::report::Failure;
use crate::conformance::target::{ConformanceTarget, Mode};
use crate::{Headers, IncomingMessage, OutgoingMessage, Publisher};

/// Publishes `payload` with `headers` to a fresh name and returns what one subscriber got.
async fn round_trip<T: ConformanceTarget>(
    ctx: &Ctx<T>,
    payload: &[u8],
    headers: &Headers,
) -> Result<(), Failure> {
    let name = ctx.name();
    ctx.step("connect and subscribe");
    let broker = ctx.connect().await?;
    let publisher = ctx.target.publisher(&broker);
    let mut inbox = ctx.subscribe(&broker, &name, ctx.single_mode()).await?;

    ctx.step("publish the message");
    ctx.publish(
        &publisher,
        OutgoingMessage::new(&name, payload).with_headers(headers),
    )
    .await?;

    ctx.step("receive the message");
    let (_, message) = inbox.expect("the published message").await?;
    if message.payload() != payload {
        let received = message.payload();
        let at = payload
            .iter()
            .zip(received)
            .position(|(a, b)| a != b)
            .unwrap_or(payload.len().min(received.len()));
        return Err(ctx.fail(
            format!("the payload as published ({} bytes)", payload.len()),
            format!(
                "{} bytes, first difference at byte {at}: {}",
                received.len(),
                show(received)
            ),
        ));
    }
    if let Some(got) = message.name() {
        ctx.ensure(got == name, format!("name() to be {name:?}"), || {
            format!("{got:?}")
        })?;
    }
    if let Some(count) = message.redelivery_count() {
        ctx.ensure(
            count == 0,
            "redelivery_count() Some(0) on a first delivery",
            || format!("Some({count})"),
        )?;
    }

    ctx.step("compare the headers");
    let received = message.headers();
    for (key, _) in headers.iter() {
        let sent: Vec<&[u8]> = headers.get_all(key).collect();
        let got: Vec<&[u8]> = received.get_all(key).collect();
        ctx.ensure(sent == got, format!("header {key:?} = {sent:?}"), || {
            format!("{got:?} (all headers received: {received:?})")
        })?;
    }
    if ctx.caps.header_order && !headers.is_empty() {
        let sent: Vec<&str> = headers.iter().map(|(k, _)| k).collect();
        let got: Vec<&str> = received
            .iter()
            .map(|(k, _)| k)
            .filter(|k| headers.contains(k))
            .collect();
        ctx.ensure(
            sent == got,
            format!("the published headers in publish order {sent:?}"),
            || format!("{got:?}"),
        )?;
    }

    ctx.step("ack the message");
    ctx.ack(message).await
}

pub(crate) async fn round_trip_keeps_payload<T: ConformanceTarget>(
    ctx: Ctx<T>,
) -> Result<(), Failure> {
    round_trip(
        &ctx,
        "hello, conformance: {\"id\": 42}".as_bytes(),
        &Headers::new(),
    )
    .await
}

pub(crate) async fn round_trip_keeps_binary_payload<T: ConformanceTarget>(
    ctx: Ctx<T>,
) -> Result<(), Failure> {
    let payload: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    round_trip(&ctx, &payload, &Headers::new()).await
}

pub(crate) async fn round_trip_keeps_empty_payload<T: ConformanceTarget>(
    ctx: Ctx<T>,
) -> Result<(), Failure> {
    round_trip(&ctx, b"", &Headers::new()).await
}

pub(crate) async fn round_trip_keeps_large_payload<T: ConformanceTarget>(
    ctx: Ctx<T>,
) -> Result<(), Failure> {
    let payload: Vec<u8> = (0..ctx.caps.max_payload).map(|i| (i % 251) as u8).collect();
    round_trip(&ctx, &payload, &Headers::new()).await
}

pub(crate) async fn round_trip_keeps_headers<T: ConformanceTarget>(
    ctx: Ctx<T>,
) -> Result<(), Failure> {
    let headers: Headers = [
        ("x-conformance-id", "42"),
        ("x-conformance-text", "hello world, with spaces"),
        ("content-type", "application/octet-stream"),
    ]
    .into_iter()
    .collect();
    round_trip(&ctx, b"with headers", &headers).await
}

pub(crate) async fn round_trip_keeps_header_order<T: ConformanceTarget>(
    ctx: Ctx<T>,
) -> Result<(), Failure> {
    let headers: Headers = [
        ("x-conformance-zulu", "1"),
        ("x-conformance-alpha", "2"),
        ("x-conformance-mike", "3"),
        ("x-conformance-bravo", "4"),
    ]
    .into_iter()
    .collect();
    round_trip(&ctx, b"ordered headers", &headers).await
}

pub(crate) async fn round_trip_keeps_binary_header_values<T: ConformanceTarget>(
    ctx: Ctx<T>,
) -> Result<(), Failure> {
    let mut headers = Headers::new();
    headers.append(
        "x-conformance-binary",
        vec![0u8, 0xff, b'\r', b'\n', 0x80, b':'],
    );
    headers.append("x-conformance-empty", Vec::new());
    round_trip(&ctx, b"binary headers", &headers).await
}

pub(crate) async fn round_trip_keeps_duplicate_header_names<T: ConformanceTarget>(
    ctx: Ctx<T>,
) -> Result<(), Failure> {
    let headers: Headers = [
        ("x-conformance-dup", "first"),
        ("x-conformance-other", "between"),
        ("x-conformance-dup", "second"),
        ("x-conformance-dup", "third"),
    ]
    .into_iter()
    .collect();
    round_trip(&ctx, b"duplicate headers", &headers).await
}

pub(crate) async fn ordering_is_kept_per_name<T: ConformanceTarget>(
    ctx: Ctx<T>,
) -> Result<(), Failure> {
    let name = ctx.name();
    ctx.step("connect and subscribe");
    let broker = ctx.connect().await?;
    let publisher = ctx.target.publisher(&broker);
    let mut inbox = ctx.subscribe(&broker, &name, ctx.single_mode()).await?;

    ctx.step("publish 100 messages one after the other");
    let sent = payloads("ordered", 100);
    ctx.publish_all(&publisher, &name, &sent).await?;

    ctx.step("receive the 100 messages");
    let received = inbox
        .expect_each(&sent, 1, "the published messages")
        .await?;
    let got: Vec<&[u8]> = received.iter().map(|(_, m)| m.payload()).collect();
    same_order(&ctx.steps, "one subscriber", &sent, &got)?;

    ctx.step("ack the messages");
    ctx.ack_all(received.into_iter().map(|(_, m)| m)).await
}

pub(crate) async fn names_are_isolated<T: ConformanceTarget>(ctx: Ctx<T>) -> Result<(), Failure> {
    let first = ctx.name();
    let second = ctx.name();
    ctx.step("connect and subscribe to two names");
    let broker = ctx.connect().await?;
    let publisher = ctx.target.publisher(&broker);
    let mut first_inbox = ctx.subscribe(&broker, &first, ctx.single_mode()).await?;
    let mut second_inbox = ctx.subscribe(&broker, &second, ctx.single_mode()).await?;

    ctx.step("publish to the second name, then to the first");
    ctx.publish(&publisher, OutgoingMessage::new(&second, b"for the second"))
        .await?;
    ctx.publish(&publisher, OutgoingMessage::new(&first, b"for the first"))
        .await?;

    ctx.step("the first name's subscriber receives only its message");
    let message = first_inbox.expect_payload(b"for the first").await?;
    ctx.ack(message).await?;
    first_inbox
        .expect_silence("nothing published to another name")
        .await?;

    ctx.step("the second name's subscriber receives only its message");
    let message = second_inbox.expect_payload(b"for the second").await?;
    ctx.ack(message).await?;
    second_inbox
        .expect_silence("nothing published to another name")
        .await
}

pub(crate) async fn fan_out_subscribers_each_receive_every_message<T: ConformanceTarget>(
    ctx: Ctx<T>,
) -> Result<(), Failure> {
    const SUBSCRIBERS: usize = 3;
    let name = ctx.name();
    ctx.step("connect and open 3 fan-out subscribers on 3 connections");
    let mut inbox = ctx.inbox();
    for _ in 0..SUBSCRIBERS {
        let broker = ctx.connect().await?;
        inbox.add(ctx.subscriber(&broker, &name, Mode::FanOut).await?);
    }
    let broker = ctx.connect().await?;
    let publisher = ctx.target.publisher(&broker);

    ctx.step("publish 10 messages");
    let sent = payloads("fan-out", 10);
    ctx.publish_all(&publisher, &name, &sent).await?;

    ctx.step("each subscriber receives each message");
    let received = inbox
        .expect_each(&sent, SUBSCRIBERS, "every message on every subscriber")
        .await?;
    let mut per_member: HashMap<usize, Vec<&[u8]>> = HashMap::new();
    for (member, message) in &received {
        per_member
            .entry(*member)
            .or_default()
            .push(message.payload());
    }
    for member in 0..SUBSCRIBERS {
        let got = per_member.remove(&member).unwrap_or_default();
        let what = format!("subscriber {member}");
        if ctx.caps.ordering {
            same_order(&ctx.steps, &what, &sent, &got)?;
        } else {
            same_set(&ctx.steps, &what, &sent, &got)?;
        }
    }
    ctx.ack_all(received.into_iter().map(|(_, m)| m)).await?;

    ctx.step("no subscriber receives more");
    inbox.expect_silence("every message was delivered").await
}

pub(crate) async fn competing_consumers_share<T: ConformanceTarget>(
    ctx: Ctx<T>,
) -> Result<(), Failure> {
    const MEMBERS: usize = 3;
    let name = ctx.name();
    let group = ctx.group();
    ctx.step("connect and open 3 members of one group on 3 connections");
    let mut inbox = ctx.inbox();
    for _ in 0..MEMBERS {
        let broker = ctx.connect().await?;
        inbox.add(
            ctx.subscriber(&broker, &name, Mode::Group(group.clone()))
                .await?,
        );
    }
    let broker = ctx.connect().await?;
    let publisher = ctx.target.publisher(&broker);

    ctx.step("publish 30 messages");
    let sent = payloads("shared", 30);
    ctx.publish_all(&publisher, &name, &sent).await?;

    ctx.step("receive and ack every message from whichever member gets it");
    let mut got = Vec::with_capacity(sent.len());
    let mut per_member = [0usize; MEMBERS];
    while got.len() < sent.len() {
        let what = format!(
            "the group's messages ({} of {} so far)",
            got.len(),
            sent.len()
        );
        let (member, message) = inbox.expect(&what).await.map_err(|mut failure| {
            let got: Vec<&[u8]> = got.iter().map(Vec::as_slice).collect();
            failure.actual.push_str(&missing(&sent, 1, &got));
            failure
        })?;
        got.push(message.payload().to_vec());
        if let Some(count) = per_member.get_mut(member) {
            *count += 1;
        }
        ctx.ack(message).await?;
    }
    let got: Vec<&[u8]> = got.iter().map(Vec::as_slice).collect();
    same_set(
        &ctx.steps,
        &format!("the group (received per member: {per_member:?})"),
        &sent,
        &got,
    )?;

    ctx.step("no member receives a message twice");
    inbox
        .expect_silence("each message goes to exactly one member")
        .await
}

pub(crate) async fn concurrent_publishers_lose_nothing<T: ConformanceTarget>(
    ctx: Ctx<T>,
) -> Result<(), Failure> {
    const PUBLISHERS: usize = 4;
    const EACH: usize = 25;
    let name = ctx.name();
    ctx.step("connect and subscribe");
    let broker = ctx.connect().await?;
    let mut inbox = ctx.subscribe(&broker, &name, ctx.single_mode()).await?;

    ctx.step("connect 4 publishers");
    let mut batches = Vec::with_capacity(PUBLISHERS);
    let mut tasks = JoinSet::new();
    for p in 0..PUBLISHERS {
        let connection = ctx.connect().await?;
        let publisher = ctx.target.publisher(&connection);
        let batch = payloads(&format!("publisher-{p}"), EACH);
        batches.push(batch.clone());
        let name = name.clone();
        tasks.spawn(async move {
            for payload in &batch {
                if let Err(e) = publisher
                    .publish(OutgoingMessage::new(&name, payload))
                    .await
                {
                    return Err(format!("publisher {p}: error {e} on {}", show(payload)));
                }
            }
            Ok(())
        });
    }

    ctx.step("publish 25 messages from each publisher at once");
    let limit = ctx.caps.receive_timeout * 4;
    let results = ctx
        .within(limit, "every publisher to finish", tasks.join_all())
        .await?;
    for result in results {
        result.map_err(|e| ctx.fail("every publish to succeed", e))?;
    }

    ctx.step("receive every message");
    let all: Vec<Vec<u8>> = batches.iter().flatten().cloned().collect();
    let received = inbox
        .expect_each(&all, 1, "every published message")
        .await?;
    let got: Vec<&[u8]> = received.iter().map(|(_, m)| m.payload()).collect();
    same_set(&ctx.steps, "one subscriber", &all, &got)?;
    if ctx.caps.ordering {
        ctx.step("each publisher's messages arrive in its publish order");
        for (p, batch) in batches.iter().enumerate() {
            let prefix = format!("publisher-{p}-");
            let own: Vec<&[u8]> = got
                .iter()
                .copied()
                .filter(|m| m.starts_with(prefix.as_bytes()))
                .collect();
            same_order(&ctx.steps, &format!("publisher {p}"), batch, &own)?;
        }
    }

    ctx.step("ack the messages");
    ctx.ack_all(received.into_iter().map(|(_, m)| m)).await?;
    inbox
        .expect_silence("every message was delivered once")
        .await
}
