//! Lifecycle: shutdown, use after shutdown, a service restart and a server restart.

use crate::conformance::harness::{Ctx, missing, payloads, same_set, show};
use crate::conformance::report::Failure;
use crate::conformance::target::{ConformanceTarget, Mode};
use crate::{Broker, IncomingMessage, OutgoingMessage, Publisher};

pub(crate) async fn shutdown_is_bounded_and_ends_streams<T: ConformanceTarget>(
    ctx: Ctx<T>,
) -> Result<(), Failure> {
    let name = ctx.name();
    let bound = ctx.caps.shutdown_timeout;
    ctx.step("connect and subscribe");
    let broker = ctx.connect().await?;
    let publisher = ctx.target.publisher(&broker);
    let mut inbox = ctx.subscribe(&broker, &name, ctx.single_mode()).await?;

    ctx.step("publish a message and hold it unsettled");
    ctx.publish(&publisher, OutgoingMessage::new(&name, b"in hand"))
        .await?;
    let message = inbox.expect_payload(b"in hand").await?;

    ctx.step(format!(
        "shutdown() with an open subscriber and an unsettled message, within {bound:?}"
    ));
    // An error is a legitimate report of a failed teardown; only a hang or a panic fails.
    let _reported = ctx
        .within(bound, "shutdown() to return", broker.shutdown())
        .await?;

    ctx.step("the subscriber's stream ends or yields an error after shutdown");
    inbox.expect_end(0, bound).await?;

    ctx.step("settling the held message after shutdown returns (Ok or Err)");
    let _settled = ctx
        .within(bound, "ack() after shutdown to return", message.ack())
        .await?;

    ctx.step("a second shutdown() returns");
    let _again = ctx
        .within(bound, "a second shutdown() to return", broker.shutdown())
        .await?;
    Ok(())
}

pub(crate) async fn publish_after_shutdown_errors<T: ConformanceTarget>(
    ctx: Ctx<T>,
) -> Result<(), Failure> {
    let name = ctx.name();
    ctx.step("connect and publish once");
    let broker = ctx.connect().await?;
    let publisher = ctx.target.publisher(&broker);
    ctx.publish(&publisher, OutgoingMessage::new(&name, b"before"))
        .await?;

    ctx.step("shutdown()");
    ctx.shutdown(&broker).await?;

    ctx.step("publish after shutdown");
    let result = ctx
        .within(
            ctx.caps.receive_timeout,
            "publish() after shutdown to return",
            publisher.publish(OutgoingMessage::new(&name, b"after")),
        )
        .await?;
    match result {
        Ok(()) => Err(ctx.fail("publish() after shutdown to fail", "Ok(())")),
        Err(e) => {
            ctx.step("the publish error names no credential");
            ctx.no_credentials("the error's Display", &e.to_string())?;
            ctx.no_credentials("the error's Debug", &format!("{e:?}"))
        }
    }
}

pub(crate) async fn resumed_subscriber_loses_nothing<T: ConformanceTarget>(
    ctx: Ctx<T>,
) -> Result<(), Failure> {
    let name = ctx.name();
    let mode = Mode::Group(ctx.group());
    ctx.step("connect a publisher and the service's subscriber");
    let publishing = ctx.connect().await?;
    let publisher = ctx.target.publisher(&publishing);
    let service = ctx.connect().await?;
    let mut inbox = ctx.subscribe(&service, &name, mode.clone()).await?;

    ctx.step("publish 10 messages");
    let sent = payloads("before-restart", 10);
    ctx.publish_all(&publisher, &name, &sent).await?;

    ctx.step("receive 4, ack 3 and hold 1 unsettled");
    let mut received = inbox.expect_many(4, "the first messages").await?;
    let (_, held) = received.remove(3);
    let mut acked = Vec::new();
    for (_, message) in received {
        acked.push(message.payload().to_vec());
        ctx.ack(message).await?;
    }

    ctx.step("shut the service's connection down");
    ctx.shutdown(&service).await?;
    drop(inbox);
    drop(held);

    ctx.step("publish 5 more while the service is down");
    let later = payloads("during-restart", 5);
    ctx.publish_all(&publisher, &name, &later).await?;

    ctx.step("a new connection resubscribes to the same group");
    let resumed = ctx.connect().await?;
    let mut inbox = ctx.subscribe(&resumed, &name, mode).await?;

    ctx.step("every message not acked arrives");
    let expected: Vec<Vec<u8>> = sent
        .iter()
        .chain(&later)
        .filter(|p| !acked.contains(p))
        .cloned()
        .collect();
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let what = format!(
            "the messages not acked before the restart ({} of {} so far)",
            got.len(),
            expected.len()
        );
        let (_, message) = inbox.expect(&what).await.map_err(|mut failure| {
            let got: Vec<&[u8]> = got.iter().map(Vec::as_slice).collect();
            failure.actual.push_str(&missing(&expected, 1, &got));
            failure
        })?;
        ctx.ensure(
            !acked.iter().any(|a| a == message.payload()),
            "no message acked before the restart",
            || format!("{} again", show(message.payload())),
        )?;
        got.push(message.payload().to_vec());
        ctx.ack(message).await?;
    }
    let got: Vec<&[u8]> = got.iter().map(Vec::as_slice).collect();
    same_set(&ctx.steps, "after the restart", &expected, &got)?;
    inbox.expect_silence("every message was acked").await
}

pub(crate) async fn server_restart_loses_nothing<T: ConformanceTarget>(
    ctx: Ctx<T>,
) -> Result<(), Failure> {
    let name = ctx.name();
    let mode = Mode::Group(ctx.group());
    ctx.step("connect a publisher and a subscriber");
    let publishing = ctx.connect().await?;
    let publisher = ctx.target.publisher(&publishing);
    let service = ctx.connect().await?;
    let mut inbox = ctx.subscribe(&service, &name, mode.clone()).await?;

    ctx.step("publish 5 messages, receive and ack 2");
    let sent = payloads("before-server-restart", 5);
    ctx.publish_all(&publisher, &name, &sent).await?;
    let mut acked = Vec::new();
    for (_, message) in inbox.expect_many(2, "the first messages").await? {
        acked.push(message.payload().to_vec());
        ctx.ack(message).await?;
    }
    drop(inbox);

    ctx.step("restart the broker server");
    match ctx.target.restart_server().await {
        Ok(true) => {}
        Ok(false) => {
            return Err(ctx.fail(
                "restart_server() to restart the server (Capabilities::server_restart = true)",
                "Ok(false): the target cannot restart it",
            ));
        }
        Err(reason) => {
            return Err(ctx.fail("restart_server() to succeed", format!("Err({reason})")));
        }
    }

    ctx.step("reconnect after the restart");
    // The old connections may report the lost server; that is not the point here.
    let _old = tokio::time::timeout(ctx.caps.shutdown_timeout, service.shutdown()).await;
    let _old = tokio::time::timeout(ctx.caps.shutdown_timeout, publishing.shutdown()).await;
    let publishing = ctx.connect().await?;
    let publisher = ctx.target.publisher(&publishing);
    let service = ctx.connect().await?;
    let mut inbox = ctx.subscribe(&service, &name, mode).await?;

    ctx.step("publish 5 more after the restart");
    let later = payloads("after-server-restart", 5);
    ctx.publish_all(&publisher, &name, &later).await?;

    ctx.step("every message not acked arrives");
    let expected: Vec<Vec<u8>> = sent
        .iter()
        .chain(&later)
        .filter(|p| !acked.contains(p))
        .cloned()
        .collect();
    let received = inbox
        .expect_each(&expected, 1, "the messages not acked before the restart")
        .await?;
    let got: Vec<&[u8]> = received.iter().map(|(_, m)| m.payload()).collect();
    same_set(&ctx.steps, "after the server restart", &expected, &got)?;
    ctx.ack_all(received.into_iter().map(|(_, m)| m)).await?;
    inbox.expect_silence("every message was acked").await
}
