"""The FastStream 0.7 side of tests/faststream.rs.

    python faststream_peer.py BOOTSTRAP_SERVERS PREFIX

Subscribes with FastStream (aiokafka) to the topic `PREFIX.to-fs` in the group
`PREFIX-fs` and reports each message it gets (body, key, headers, correlation id and
content type, as JSON) to the topic `PREFIX.report`. Once started it reports "ready"; on
a message to `PREFIX.go` it publishes to `PREFIX.to-rs` a text message and a JSON message,
each with a key, a header and a correlation id. Runs until it is killed.
"""

import asyncio
import json
import sys

from faststream.kafka import KafkaBroker, KafkaMessage

servers, prefix = sys.argv[1], sys.argv[2]
broker = KafkaBroker(servers)


async def report(kind: str, body: str, message: KafkaMessage | None = None) -> None:
    entry = {"kind": kind, "body": body}
    if message is not None:
        key = message.raw_message.key
        entry.update(
            key=key.decode() if key is not None else None,
            headers={name: str(value) for name, value in message.headers.items()},
            correlation_id=message.correlation_id,
            content_type=message.content_type,
        )
    await broker.publish(json.dumps(entry), topic=f"{prefix}.report")


@broker.subscriber(f"{prefix}.to-fs", group_id=f"{prefix}-fs", auto_offset_reset="earliest")
async def on_message(message: KafkaMessage) -> None:
    # The raw body: FastStream would decode a JSON one into a dict.
    await report("message", message.body.decode(), message)


@broker.subscriber(f"{prefix}.go", group_id=f"{prefix}-go", auto_offset_reset="earliest")
async def go(body: str) -> None:
    await broker.publish(
        "text from faststream",
        topic=f"{prefix}.to-rs",
        key=b"fs-key-1",
        headers={"x-origin": "faststream"},
        correlation_id="cid-fs-1",
    )
    await broker.publish(
        {"id": 7, "from": "faststream"},
        topic=f"{prefix}.to-rs",
        key=b"fs-key-2",
        headers={"x-origin": "faststream"},
        correlation_id="cid-fs-2",
    )


async def main() -> None:
    await broker.start()
    await report("ready", "")
    await asyncio.Event().wait()


asyncio.run(main())
