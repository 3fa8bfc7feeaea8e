"""Topic plans and per-test isolation of names, without a broker."""

from __future__ import annotations

import pytest

from shared.embedded.provision import WEEK_MS, TopicPlan, isolated_settings, topic_specs
from shared.settings import Settings


def test_topic_specs_cover_the_five_contract_topics_with_their_sizes() -> None:
    settings = Settings(events_partitions=12, requests_partitions=3)
    specs = {spec.name: spec for spec in topic_specs(settings)}
    assert {name: spec.partitions for name, spec in specs.items()} == {
        "usage.events": 12,
        "usage.events.dlq": 1,
        "usage.export-requests": 3,
        "usage.export-completions": 3,
        "usage.export-requests.dlq": 1,
    }
    assert all(
        spec.configs == {"retention.ms": str(WEEK_MS), "message.timestamp.type": "LogAppendTime"}
        for spec in specs.values()
    )


def test_topic_plan_overrides_sizes_and_retention() -> None:
    plan = TopicPlan(completions_partitions=6, dlq_partitions=2, retention_ms=1000)
    specs = {spec.name: spec for spec in topic_specs(Settings(), plan)}
    assert specs["usage.export-completions"].partitions == 6
    assert specs["usage.events.dlq"].partitions == 2
    assert specs["usage.events"].configs == {
        "retention.ms": "1000",
        "message.timestamp.type": "LogAppendTime",
    }


def test_isolated_settings_renames_every_topic_bucket_and_group() -> None:
    base = Settings()
    fresh = isolated_settings(base, "a1b2")
    assert fresh.topic_events == "usage.events.a1b2"
    assert fresh.topic_export_requests_dlq == "usage.export-requests.dlq.a1b2"
    assert fresh.aggregates_bucket == "usage-aggregates-a1b2"
    assert fresh.exports_bucket == "usage-exports-a1b2"
    assert fresh.ingest_group == "usage-ingest-a1b2"
    assert fresh.exporter_group == "usage-exporter-a1b2"
    assert fresh.kafka_bootstrap == base.kafka_bootstrap


@pytest.mark.parametrize("tag", ["", "Upper", "with-dash", "x" * 25])
def test_isolated_settings_rejects_tags_that_break_names(tag: str) -> None:
    with pytest.raises(ValueError, match="tag"):
        isolated_settings(Settings(), tag)


def test_isolated_settings_rejects_bucket_names_over_63_characters() -> None:
    base = Settings(aggregates_bucket="a" * 55)
    with pytest.raises(ValueError, match="63"):
        isolated_settings(base, "abcdefghij")
