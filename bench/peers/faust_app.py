"""The faust-streaming peer: an agent that updates a Table once per event, as faust's
documentation teaches (``table[key] = new value``; each update is also written to the
table's changelog topic).

``python -m faust -A bench.peers.faust_app worker -l warning`` with the ``BENCH_*``
variables. At-least-once processing (the embedded broker has no transactions or
idempotent producers), a 6 s session timeout, in-memory table store, and internal
topics created with ``retention.ms`` set (the embedded broker describes only the
configs given at creation).
"""

from __future__ import annotations

import atexit
import os

import faust
import orjson

from bench.peers.common import Marks, PeerConfig, add, counter_key

WEEK_MS = 7 * 24 * 3600 * 1000

config = PeerConfig.from_env()
marks = Marks(config.marks, config.expected)

app = faust.App(
    config.group,
    broker=f"kafka://{config.bootstrap}",
    store="memory://",
    processing_guarantee="at_least_once",
    broker_session_timeout=config.session_timeout_ms / 1000,
    broker_heartbeat_interval=1.0,
    topic_partitions=int(os.environ.get("BENCH_PARTITIONS", "12")),
    topic_replication_factor=1,
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
    datadir=str(config.state_dir),
)
events = app.topic(config.topic, key_type=bytes, value_type=bytes, value_serializer="raw")
totals = app.Table(
    "user-model-day",
    default=lambda: None,
    extra_topic_configs={"retention.ms": str(WEEK_MS)},
)


@app.agent(events)  # type: ignore[untyped-decorator, unused-ignore]  # faust absent: Any
async def fold(stream: faust.StreamT[bytes]) -> None:
    async for value in stream:
        marks.seen()
        event = orjson.loads(value)
        key = counter_key(event)
        if key is not None:
            totals[key] = add(totals[key], event)
        marks.folded()


atexit.register(lambda: marks.close())
