"""A FastStream 0.7 MQTT service the Rust interop test talks to (MQTT 5).

    python3 faststream_service.py <host> <port> <root>

- `<root>/to_py`: answers a request with {"echo": body, "header": headers["x-from"]}, and
  publishes the same to `<root>/from_py` with the header `x-from: python`.
- after printing READY it waits for `<root>/go`, then sends a request to
  `<root>/rust_rpc` and publishes the reply's body and header to `<root>/py_got`.
"""

import asyncio
import json
import sys

from faststream import FastStream
from faststream.mqtt import MQTTBroker, MQTTMessage, QoS

host, port, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
broker = MQTTBroker(host=host, port=port, client_id=f"{root.replace('/', '_')}_py", version="5.0")
app = FastStream(broker)


@broker.subscriber(f"{root}/to_py", qos=QoS.AT_LEAST_ONCE)
async def to_py(body: dict, message: MQTTMessage) -> dict:
    answer = {"echo": body, "header": message.headers.get("x-from")}
    await broker.publish(
        answer,
        f"{root}/from_py",
        qos=QoS.AT_LEAST_ONCE,
        headers={"x-from": "python"},
    )
    return answer


@broker.subscriber(f"{root}/go", qos=QoS.AT_LEAST_ONCE)
async def go(body: str) -> None:
    reply = await broker.request(
        {"ask": "from python"},
        f"{root}/rust_rpc",
        timeout=5.0,
        headers={"x-from": "python"},
    )
    await broker.publish(
        {"reply": json.loads(reply.body), "header": reply.headers.get("x-from")},
        f"{root}/py_got",
        qos=QoS.AT_LEAST_ONCE,
    )


@app.after_startup
async def ready() -> None:
    print("READY", flush=True)


if __name__ == "__main__":
    asyncio.run(app.run())
