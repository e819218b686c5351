"""The FastStream side of tests/faststream.rs: a FastStream 0.7 RabbitMQ service.

Usage: faststream_peer.py <amqp url> <prefix>

It consumes `<prefix>.to-fs` (our messages) and reports each one to `<prefix>.report`
as JSON; answers requests on `<prefix>.fs-rpc`; and once `<prefix>.go` says so, publishes
to `<prefix>.to-rs` through the topic exchange `<prefix>.events` with properties and
headers, then sends a request to `<prefix>.rs-rpc` and reports the reply.
"""

import asyncio
import datetime
import sys

from faststream import FastStream
from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange, RabbitMessage, RabbitQueue

url, prefix = sys.argv[1], sys.argv[2]
broker = RabbitBroker(url)
app = FastStream(broker)
events = RabbitExchange(f"{prefix}.events", type=ExchangeType.TOPIC, auto_delete=True)


async def report(kind, body, message=None):
    raw = message.raw_message if message is not None else None
    await broker.publish(
        {
            "kind": kind,
            "body": body,
            "headers": {k: str(v) for k, v in (message.headers if message else {}).items()},
            "correlation_id": message.correlation_id if message else None,
            "message_id": message.message_id if message else None,
            "content_type": message.content_type if message else None,
            "reply_to": message.reply_to if message else None,
            "priority": raw.priority if raw else None,
            "type": raw.type if raw else None,
            "timestamp": raw.timestamp.timestamp() if raw and raw.timestamp else None,
        },
        queue=f"{prefix}.report",
    )


@broker.subscriber(RabbitQueue(f"{prefix}.to-fs", auto_delete=True))
async def from_rs(body: str, message: RabbitMessage):
    await report("to-fs", body, message)


@broker.subscriber(RabbitQueue(f"{prefix}.fs-rpc", auto_delete=True))
async def answer(body: str) -> str:
    return f"fs answers {body}"


@broker.subscriber(RabbitQueue(f"{prefix}.go", auto_delete=True))
async def go(body: str):
    await broker.publish(
        "from fs",
        exchange=events,
        routing_key=f"{prefix}.to-rs",
        headers={"x-tenant": "eu"},
        correlation_id="cid-fs",
        message_id="mid-fs",
        priority=3,
        message_type="order.created",
        timestamp=datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.timezone.utc),
        persist=True,
    )
    reply = await broker.request({"ask": "ping from fs"}, queue=f"{prefix}.rs-rpc", timeout=10)
    answer = await reply.decode()
    await report("reply-from-rs", answer["answer"], reply)


@app.after_startup
async def ready():
    await report("ready", "")


if __name__ == "__main__":
    asyncio.run(app.run())
