"""The FastStream 0.7 side of tests/faststream.rs.

    python faststream_peer.py REDIS_URL PREFIX

Subscribes with FastStream to `PREFIX:to-fs-<kind>` on a channel, a list and a stream, and
reports each message it gets (body and headers, as JSON) to the list `PREFIX:report`;
answers requests on the channel `PREFIX:fs-rpc` with "fs:" + body. Once subscribed it
reports "ready"; on the channel `PREFIX:go` it publishes to `PREFIX:to-rs-<kind>` on a channel,
a list and a stream with headers and a correlation id, sends a request to the channel
`PREFIX:rs-rpc` and reports the answer. Runs until it is killed.
"""

import asyncio
import json
import sys

from faststream.redis import RedisBroker, RedisMessage, StreamSub

url, prefix = sys.argv[1], sys.argv[2]
broker = RedisBroker(url)


async def report(kind: str, body, headers) -> None:
    if isinstance(body, bytes):
        body = body.decode()
    await broker.publish(
        json.dumps({"kind": kind, "body": body, "headers": dict(headers)}),
        list=f"{prefix}:report",
    )


@broker.subscriber(f"{prefix}:to-fs-channel")
async def on_channel(body: str, message: RedisMessage) -> None:
    await report("channel", body, message.headers)


@broker.subscriber(list=f"{prefix}:to-fs-list")
async def on_list(body: str, message: RedisMessage) -> None:
    await report("list", body, message.headers)


@broker.subscriber(stream=StreamSub(f"{prefix}:to-fs-stream", group="fs", consumer="fs-1"))
async def on_stream(body: str, message: RedisMessage) -> None:
    await report("stream", body, message.headers)


@broker.subscriber(f"{prefix}:fs-rpc")
async def rpc(body: str) -> str:
    return "fs:" + body


@broker.subscriber(f"{prefix}:go")
async def go(body: str) -> None:
    headers = {"x-tenant": "eu"}
    target = f"{prefix}:to-rs"
    await broker.publish("from fs channel", channel=f"{target}-channel", headers=headers, correlation_id="cid-channel")
    await broker.publish("from fs list", list=f"{target}-list", headers=headers, correlation_id="cid-list")
    await broker.publish("from fs stream", stream=f"{target}-stream", headers=headers, correlation_id="cid-stream")
    reply = await broker.request("ping", channel=f"{prefix}:rs-rpc", timeout=10)
    body = await reply.decode()
    await report("reply", body, reply.headers)


async def main() -> None:
    async with broker:
        await broker.start()
        await report("ready", "", {})
        await asyncio.Event().wait()


asyncio.run(main())
