"""The Quix Streams peer: re-key message events by (workspace, user, model), then a
1-day tumbling window aggregation (RocksDB state) of the counters and token sums —
Quix's documented pattern (``group_by`` → ``tumbling_window`` → ``agg``).

``python -m bench.peers.quix_app`` with the ``BENCH_*`` variables. At-least-once, offsets
from the earliest, a 6 s session timeout. Windows use the event's ``occurred_at`` and a
grace period of 46 days, so the late events (up to 45 days) are counted as the service
counts them. Quix reads ``retention.ms`` of the input topic back (DescribeConfigs) to
create its repartition and changelog topics; the benchmark's topics are created with it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from quixstreams import Application
from quixstreams.dataframe.windows import Count, Sum

from bench.peers.common import Marks, PeerConfig

GRACE = timedelta(days=46)


def occurred_ms(value: Any, headers: Any, timestamp: float, timestamp_type: Any) -> int:
    moment = datetime.fromisoformat(value["occurred_at"]).astimezone(UTC)
    return int(moment.timestamp() * 1000)


def flatten(event: dict[str, Any]) -> dict[str, Any]:
    usage = event.get("usage") or {}
    return {
        "occurred_at": event["occurred_at"],
        "requests": event.get("requests") or 1,
        "prompt": usage.get("prompt_tokens") or 0,
        "completion": usage.get("completion_tokens") or 0,
        "cached": usage.get("cached_prompt_tokens") or 0,
        "creation": usage.get("cache_creation_tokens") or 0,
    }


def main() -> None:
    config = PeerConfig.from_env()
    marks = Marks(config.marks, config.expected)
    app = Application(
        broker_address=config.bootstrap,
        consumer_group=config.group,
        auto_offset_reset="earliest",
        processing_guarantee="at-least-once",
        consumer_extra_config={"session.timeout.ms": config.session_timeout_ms},
        state_dir=str(config.state_dir),
    )
    events = app.topic(
        config.topic,
        key_deserializer="bytes",
        value_deserializer="json",
        timestamp_extractor=occurred_ms,
    )
    sdf = app.dataframe(events)
    sdf = sdf.update(lambda _: marks.seen())
    sdf = sdf.filter(lambda event: event.get("type") == "message")
    sdf = sdf.group_by(
        lambda event: f"{event['org_id']}|{event['user_id']}|{event['model']}",
        name="user-model",
    )
    sdf = sdf.update(lambda _: marks.folded())
    sdf = sdf.apply(flatten)
    sdf = (
        sdf.tumbling_window(timedelta(days=1), grace_ms=GRACE)
        .agg(
            messages=Count(),
            requests=Sum("requests"),
            prompt=Sum("prompt"),
            completion=Sum("completion"),
            cached=Sum("cached"),
            creation=Sum("creation"),
        )
        .current()
    )
    try:
        app.run()
    finally:
        marks.close()


if __name__ == "__main__":
    main()
