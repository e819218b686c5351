//! Settlement: ack, nack with and without requeue, delayed nack, out-of-order settlement
//! and messages left unsettled by a subscriber that went away.

use std::sync::Arc;

use tokio::time::Instant;

use crate::conformance::harness::{Ctx, Event, Inbox, payloads, show};
use crate::conformance::report::Failure;
use crate::conformance::target::{ConformanceTarget, HeaderSupport, MessageOf, Mode};
use crate::{Headers, IncomingMessage, OutgoingMessage};

/// One connection, its publisher and one subscriber to a fresh name.
struct Single<T: ConformanceTarget> {
    name: String,
    mode: Mode,
    publisher: T::Publisher,
    inbox: Inbox<MessageOf<T>>,
    _broker: Arc<T::Broker>,
}

async fn single<T: ConformanceTarget>(ctx: &Ctx<T>) -> Result<Single<T>, Failure> {
    let name = ctx.name();
    let mode = ctx.single_mode();
    ctx.step("connect and subscribe");
    let broker = ctx.connect().await?;
    let publisher = ctx.target.publisher(&broker);
    let inbox = ctx.subscribe(&broker, &name, mode.clone()).await?;
    Ok(Single {
        name,
        mode,
        publisher,
        inbox,
        _broker: broker,
    })
}

/// After the subscriber is gone, a new member of the same group receives nothing.
async fn nothing_for_a_new_member<T: ConformanceTarget>(
    ctx: &Ctx<T>,
    single: &mut Single<T>,
    why: &str,
) -> Result<(), Failure> {
    if let Mode::Group(_) = single.mode {
        ctx.step("close the subscriber and open a new member of its group");
        single.inbox.drop_member(0).await;
        let broker = ctx.connect().await?;
        let mut inbox = ctx
            .subscribe(&broker, &single.name, single.mode.clone())
            .await?;
        inbox.expect_silence(why).await?;
    }
    Ok(())
}

pub(crate) async fn ack_consumes<T: ConformanceTarget>(ctx: Ctx<T>) -> Result<(), Failure> {
    acked_message_is_consumed(ctx, Ack::Future).await
}

/// `ack_now` settles like `ack` when it says it did (and gives the message back for
/// `ack` otherwise).
pub(crate) async fn ack_now_consumes<T: ConformanceTarget>(ctx: Ctx<T>) -> Result<(), Failure> {
    acked_message_is_consumed(ctx, Ack::Now).await
}

/// Which ack a check uses.
enum Ack {
    Future,
    Now,
}

async fn acked_message_is_consumed<T: ConformanceTarget>(
    ctx: Ctx<T>,
    how: Ack,
) -> Result<(), Failure> {
    let mut single = single(&ctx).await?;
    ctx.step("publish a message");
    ctx.publish(
        &single.publisher,
        OutgoingMessage::new(&single.name, b"ack me"),
    )
    .await?;

    let message = single.inbox.expect_payload(b"ack me").await?;
    match how {
        Ack::Future => {
            ctx.step("receive and ack it");
            ctx.ack(message).await?;
        }
        Ack::Now => {
            ctx.step("receive it and ack_now (ack if given back)");
            if let Err(message) = message.ack_now() {
                ctx.ack(message).await?;
            }
        }
    }

    ctx.step("the acked message is not delivered again");
    single
        .inbox
        .expect_silence("an acked message is consumed")
        .await?;
    nothing_for_a_new_member(&ctx, &mut single, "an acked message is consumed").await
}

pub(crate) async fn nack_requeue_redelivers<T: ConformanceTarget>(
    ctx: Ctx<T>,
) -> Result<(), Failure> {
    let mut single = single(&ctx).await?;
    let with_headers = ctx.stated.headers != HeaderSupport::None;
    let headers: Headers = if with_headers {
        [("x-conformance-id", "7")].into_iter().collect()
    } else {
        Headers::new()
    };
    ctx.step("publish a message");
    ctx.publish(
        &single.publisher,
        OutgoingMessage::new(&single.name, b"nack me").with_headers(&headers),
    )
    .await?;

    ctx.step("receive it and nack(true)");
    let message = single.inbox.expect_payload(b"nack me").await?;
    let first_count = message.redelivery_count();
    ctx.nack(message, true).await?;

    ctx.step("receive the redelivery after nack(true)");
    let again = single.inbox.expect_payload(b"nack me").await?;
    if let (Some(first), Some(second)) = (first_count, again.redelivery_count()) {
        ctx.ensure(
            second > first,
            format!("redelivery_count() to grow from Some({first})"),
            || format!("Some({second})"),
        )?;
    }
    if with_headers {
        let got = again.headers().get("x-conformance-id");
        ctx.ensure(
            got == Some(&b"7"[..]),
            "the redelivery to keep the header x-conformance-id = \"7\"",
            || format!("{:?}", again.headers()),
        )?;
    }

    ctx.step("ack the redelivery");
    ctx.ack(again).await?;
    single
        .inbox
        .expect_silence("the redelivery was acked")
        .await
}

pub(crate) async fn nack_without_requeue_drops<T: ConformanceTarget>(
    ctx: Ctx<T>,
) -> Result<(), Failure> {
    let mut single = single(&ctx).await?;
    ctx.step("publish a message");
    ctx.publish(
        &single.publisher,
        OutgoingMessage::new(&single.name, b"drop me"),
    )
    .await?;

    ctx.step("receive it and nack(false)");
    let message = single.inbox.expect_payload(b"drop me").await?;
    ctx.nack(message, false).await?;

    ctx.step("the dropped message is not delivered again");
    single
        .inbox
        .expect_silence("nack(false) does not requeue")
        .await?;
    nothing_for_a_new_member(&ctx, &mut single, "nack(false) does not requeue").await
}

pub(crate) async fn nack_after_honours_its_delay<T: ConformanceTarget>(
    ctx: Ctx<T>,
) -> Result<(), Failure> {
    let mut single = single(&ctx).await?;
    let delay = ctx.caps.nack_delay;
    let tolerance = delay / 5;
    ctx.step("publish a message");
    ctx.publish(
        &single.publisher,
        OutgoingMessage::new(&single.name, b"later"),
    )
    .await?;

    ctx.step(format!("receive it and nack_after({delay:?})"));
    let message = single.inbox.expect_payload(b"later").await?;
    let first_count = message.redelivery_count();
    let nacked_at = Instant::now();
    ctx.within(
        ctx.caps.receive_timeout,
        "nack_after() to return",
        message.nack_after(delay),
    )
    .await?
    .map_err(|e| ctx.fail("nack_after() to succeed", format!("error: {e}")))?;

    ctx.step("nothing is redelivered before the delay");
    let early = delay.saturating_sub(tolerance);
    let left = early.saturating_sub(nacked_at.elapsed());
    if let Some((_, event)) = single.inbox.next_within(left).await {
        let what = match event {
            Event::Message(m) => show(m.payload()),
            _ => "a stream event".to_owned(),
        };
        return Err(ctx.fail(
            format!("no redelivery before {early:?} (delay {delay:?} less a fifth)"),
            format!("{what} after {:?}", nacked_at.elapsed()),
        ));
    }

    ctx.step("the message is redelivered after the delay");
    let again = single.inbox.expect_payload(b"later").await?;
    let after = nacked_at.elapsed();
    ctx.ensure(
        after >= early,
        format!("the redelivery no earlier than {early:?}"),
        || format!("it came after {after:?}"),
    )?;
    if let (Some(first), Some(second)) = (first_count, again.redelivery_count()) {
        ctx.ensure(
            second > first,
            format!("redelivery_count() to grow from Some({first})"),
            || format!("Some({second})"),
        )?;
    }
    ctx.ack(again).await?;
    single
        .inbox
        .expect_silence("the redelivery was acked")
        .await
}

pub(crate) async fn out_of_order_settlement_redelivers_only_the_nacked<T: ConformanceTarget>(
    ctx: Ctx<T>,
) -> Result<(), Failure> {
    let mut single = single(&ctx).await?;
    ctx.step("publish 3 messages");
    let sent = payloads("settle", 3);
    ctx.publish_all(&single.publisher, &single.name, &sent)
        .await?;

    ctx.step("receive the 3 messages");
    let mut held: Vec<Option<MessageOf<T>>> = vec![None, None, None];
    for (_, message) in single.inbox.expect_many(3, "the 3 messages").await? {
        let Some(index) = sent.iter().position(|p| p == message.payload()) else {
            return Err(ctx.fail("one of the 3 published messages", show(message.payload())));
        };
        ctx.ensure(held[index].is_none(), "3 distinct messages", || {
            format!("{} twice", show(message.payload()))
        })?;
        held[index] = Some(message);
    }
    let (Some(first), Some(second), Some(third)) = (held[0].take(), held[1].take(), held[2].take())
    else {
        return Err(ctx.fail("3 distinct messages", "fewer"));
    };

    ctx.step("ack the third, then the first, then nack(true) the second");
    ctx.ack(third).await?;
    ctx.ack(first).await?;
    ctx.nack(second, true).await?;

    ctx.step("only the second comes back");
    let again = single.inbox.expect_payload(&sent[1]).await?;
    ctx.ack(again).await?;
    single
        .inbox
        .expect_silence("the first and third were acked, the second acked on redelivery")
        .await
}

pub(crate) async fn unsettled_message_of_a_dropped_subscriber_comes_back<T: ConformanceTarget>(
    ctx: Ctx<T>,
) -> Result<(), Failure> {
    let name = ctx.name();
    let mode = Mode::Group(ctx.group());
    ctx.step("connect and open a member of a group");
    let publishing = ctx.connect().await?;
    let publisher = ctx.target.publisher(&publishing);
    let first_broker = ctx.connect().await?;
    let mut first = ctx.subscribe(&first_broker, &name, mode.clone()).await?;

    ctx.step("publish a message and receive it without settling it");
    ctx.publish(&publisher, OutgoingMessage::new(&name, b"unsettled"))
        .await?;
    let message = first.expect_payload(b"unsettled").await?;

    let mut second = if ctx.caps.competing_consumers {
        ctx.step("open a second member, then drop the first with the message unsettled");
        let broker = ctx.connect().await?;
        let second = ctx.subscribe(&broker, &name, mode.clone()).await?;
        first.drop_member(0).await;
        drop(first);
        drop(message);
        second
    } else {
        ctx.step("drop the subscriber with the message unsettled, then resubscribe");
        first.drop_member(0).await;
        drop(first);
        drop(message);
        let broker = ctx.connect().await?;
        ctx.subscribe(&broker, &name, mode.clone()).await?
    };

    ctx.step("the unsettled message comes back");
    let again = second.expect_payload(b"unsettled").await?;
    if let Some(count) = again.redelivery_count() {
        ctx.ensure(count >= 1, "redelivery_count() of at least Some(1)", || {
            format!("Some({count})")
        })?;
    }
    ctx.ack(again).await?;
    second.expect_silence("the redelivery was acked").await
}
