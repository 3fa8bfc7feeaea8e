"""The Arrow schemas of the stored tables, and the conversion of folded facts to them.

``FACTS`` has one row per accepted activity event (message, api_request,
payg_consumption) with the columns every export needs; a column that a kind does not
have is null. ``DIMENSIONS`` has one row per accepted upsert (a version of a user,
agent, API key, project or of the workspace settings). Both carry ``event_id``: the
facts' ids are the workspace's dedup set. ``day`` is the UTC day of ``occurred_ms``.

The stored facts table has one more column, ``span`` (``STORED_FACTS``), its partition
column: the UTC day ``YYYY-MM-DD`` of the rows in a file that ingest appended, or the
UTC month ``YYYY-MM`` of a file that merged a whole month (``docs/storage.md``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from shared import codec
from shared.domain.facts import API_REQUEST, MESSAGE, PAYG, Fact

#: Bump when a stored table's schema or meaning changes (``docs/storage.md``).
STORAGE_FORMAT: Final = 3

KIND_MESSAGE: Final = "message"
KIND_API_REQUEST: Final = "api_request"
KIND_PAYG: Final = "payg"

FACTS: Final = pa.schema(
    [
        pa.field("org_id", pa.string(), nullable=False),
        pa.field("day", pa.date32(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("occurred_ms", pa.int64(), nullable=False),
        pa.field("user_id", pa.string()),  # message, payg
        pa.field("api_key_id", pa.string()),  # api_request
        pa.field("assistant_id", pa.string()),
        pa.field("project_id", pa.string()),
        pa.field("conversation_id", pa.string()),
        pa.field("model", pa.string()),
        pa.field("provider", pa.string()),
        pa.field("byok", pa.bool_()),
        pa.field("deployment", pa.string()),  # "" when the event named none
        pa.field("source", pa.string()),  # upper case
        pa.field("actions", pa.list_(pa.string())),  # distinct, sorted
        pa.field("requests", pa.int64()),
        pa.field("prompt_tokens", pa.int64()),
        pa.field("completion_tokens", pa.int64()),
        pa.field("cached_tokens", pa.int64()),
        pa.field("creation_tokens", pa.int64()),
        pa.field("cost_nano", pa.int64()),  # USD x 1e9, per the contract's money rule
        pa.field("amount_nano", pa.int64()),  # payg_consumption's amount, likewise
    ]
)

#: The stored facts table's schema: FACTS and its partition column.
SPAN: Final = "span"
STORED_FACTS: Final = FACTS.append(pa.field(SPAN, pa.string(), nullable=False))


def day_span(day: date) -> str:
    """The span of a file of one UTC day's facts: ``YYYY-MM-DD``."""
    return day.isoformat()


def month_span(day: date) -> str:
    """The span of a file that holds a whole UTC month's facts: ``YYYY-MM``."""
    return day.isoformat()[:7]


def spans_of(first_day: date, last_day: date) -> list[str]:
    """Every span whose files may hold facts of the days ``first_day..last_day``: each
    day's, and the month span of each month they touch."""
    days = [date.fromordinal(n) for n in range(first_day.toordinal(), last_day.toordinal() + 1)]
    return sorted({day_span(day) for day in days} | {month_span(day) for day in days})


def with_spans(facts: pa.Table, *, month: bool = False) -> pa.Table:
    """``facts`` (FACTS) with each row's span: its day's, or its month's if ``month``."""
    text = pc.strftime(facts.column("day"), "%Y-%m" if month else "%Y-%m-%d")
    return facts.append_column(STORED_FACTS.field(SPAN), text.cast(pa.string()))


#: The partition column of a roll-up table: the roll-up's name, the facts file it
#: summarizes or ``merged-…`` for the sum of several files' roll-ups (``docs/storage.md``,
#: "Roll-ups"); named ``rollup`` where the rows have a ``source`` column of their own.
SOURCE: Final = "source"
ROLLUP: Final = "rollup"
#: ``members``: the names of the facts files a roll-up sums (one file's own name, or every
#: month file of a merged roll-up), in the roll-up's one row of part (or kind)
#: ``members``, whose figures are zero or null; null in every other row.
MEMBERS: Final = "members"
MEMBERS_ROW: Final = "members"

#: The users export's partial aggregates of one facts file: rows of ``part`` 'stats' (per
#: user), 'payg' (per user), and 'assistant', 'project', 'model', 'action' (per user and
#: ``key``), as ``queries/user_parts.sql`` computes them.
USER_ROLLUPS: Final = pa.schema(
    [
        pa.field("part", pa.string(), nullable=False),
        pa.field("user_id", pa.string()),
        pa.field("subgroup", pa.string(), nullable=False),  # always '' in a roll-up
        pa.field("key", pa.string()),
        pa.field("messages", pa.int64(), nullable=False),
        pa.field("chat", pa.int64(), nullable=False),
        pa.field("with_assistant", pa.int64(), nullable=False),
        pa.field("with_project", pa.int64(), nullable=False),
        pa.field("with_actions", pa.int64(), nullable=False),
        pa.field("prompt_tokens", pa.int64(), nullable=False),
        pa.field("completion_tokens", pa.int64(), nullable=False),
        pa.field("cached_tokens", pa.int64(), nullable=False),
        pa.field("creation_tokens", pa.int64(), nullable=False),
        pa.field("cost_nano", pa.int64(), nullable=False),
        pa.field("amount_nano", pa.int64(), nullable=False),
    ]
)
#: What the users query reads as ``user_rollups``: the partials and their source (the
#: stored table also has ``members``: ``shared.columnar.rollups.RollupKind.stored``).
ROLLUP_ROWS: Final = USER_ROLLUPS.append(pa.field(SOURCE, pa.string(), nullable=False))

#: The message and API request facts of one file summed per key, as
#: ``queries/key_parts.sql`` computes them: what the api_keys, models and
#: projects exports add up (``facts``: how many facts; a sum is null when every fact's
#: value is).
KEY_COLUMNS: Final = (
    "kind", "api_key_id", "project_id", "model", "provider", "byok", "deployment", "source",
)  # fmt: skip
KEY_ROLLUPS: Final = pa.schema(
    [FACTS.field(name) for name in KEY_COLUMNS]
    + [pa.field("facts", pa.int64(), nullable=False)]
    + [
        FACTS.field(name)
        for name in (
            "requests", "prompt_tokens", "completion_tokens", "cached_tokens",
            "creation_tokens", "cost_nano",
        )
    ]
)  # fmt: skip
#: What those queries read as ``key_rollups``: the sums and their roll-up's name.
KEY_ROLLUP_ROWS: Final = KEY_ROLLUPS.append(pa.field(ROLLUP, pa.string(), nullable=False))

#: The agent messages of one facts file per (agent, model, user, conversation), as
#: ``queries/agent_parts.sql`` computes them: what the agents export counts distinct
#: users and conversations over and adds up (``messages``: how many; a sum, ``min_…`` or
#: ``max_…`` is null when every message's value is). ``kind`` is always 'message' (or
#: ``members``).
AGENT_COLUMNS: Final = ("kind", "assistant_id", "model", "user_id", "conversation_id")
AGENT_ROLLUPS: Final = pa.schema(
    [FACTS.field(name) for name in AGENT_COLUMNS]
    + [pa.field("messages", pa.int64(), nullable=False)]
    + [
        pa.field(name, pa.int64())
        for name in (
            "prompt_tokens", "min_prompt_tokens", "max_prompt_tokens",
            "completion_tokens", "min_completion_tokens", "max_completion_tokens",
            "cached_tokens", "creation_tokens",
        )
    ]
)  # fmt: skip
#: What the agents query reads as ``agent_rollups``: the partials and their roll-up's name.
AGENT_ROLLUP_ROWS: Final = AGENT_ROLLUPS.append(pa.field(ROLLUP, pa.string(), nullable=False))

DIMENSION_KINDS: Final = ("users", "agents", "projects", "api_keys", "settings")

DIMENSIONS: Final = pa.schema(
    [
        pa.field("org_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # one of DIMENSION_KINDS
        pa.field("entity_id", pa.string(), nullable=False),
        pa.field("occurred_ms", pa.int64(), nullable=False),
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("deleted", pa.bool_(), nullable=False),
        pa.field("attributes", pa.string(), nullable=False),  # a JSON object's text
    ]
)

_DAY_MS: Final = 86_400_000
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()


def utc_day(occurred_ms: int) -> date:
    return date.fromordinal(_EPOCH_ORDINAL + occurred_ms // _DAY_MS)


def facts_table(org_id: str, facts: Iterable[Fact]) -> pa.Table:
    """The ``FACTS`` rows of one workspace's facts (``shared.domain.facts`` tuples)."""
    columns: dict[str, list[Any]] = {name: [] for name in FACTS.names}
    for fact in facts:
        row = _fact_row(fact)
        for name, column in columns.items():
            column.append(row.get(name))
    columns["org_id"] = [org_id] * len(columns["kind"])
    return pa.Table.from_pydict(columns, schema=FACTS)


def _fact_row(fact: Fact) -> dict[str, Any]:
    kind, event_id, ts = fact[0], fact[1], fact[2]
    row: dict[str, Any] = {"event_id": event_id, "occurred_ms": ts, "day": utc_day(ts)}
    if kind == MESSAGE:
        (_, _, _, user, assistant, project, conversation, model, provider, byok, deployment,
         source, actions, requests, prompt, completion, cached, creation, cost) = fact  # fmt: skip
        row |= {
            "kind": KIND_MESSAGE,
            "user_id": user,
            "assistant_id": assistant,
            "project_id": project,
            "conversation_id": conversation,
            "actions": list(actions),
        }
    elif kind == API_REQUEST:
        (_, _, _, api_key, model, provider, byok, deployment, source, requests, prompt,
         completion, cached, creation, cost) = fact  # fmt: skip
        row |= {"kind": KIND_API_REQUEST, "api_key_id": api_key}
    elif kind == PAYG:
        return row | {"kind": KIND_PAYG, "user_id": fact[3], "amount_nano": fact[4]}
    else:
        raise ValueError(f"unknown fact kind {kind!r}")
    return row | {
        "model": model,
        "provider": provider,
        "byok": byok,
        "deployment": deployment,
        "source": source,
        "requests": requests,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cached_tokens": cached,
        "creation_tokens": creation,
        "cost_nano": cost,
    }


#: (kind, entity_id, occurred_ms, event_id, attributes): one dimension version, as
#: ``shared.domain.dimensions`` records it (``deleted`` is among the attributes).
DimensionVersion = tuple[str, str, int, str, dict[str, Any]]


def dimensions_table(org_id: str, versions: Sequence[DimensionVersion]) -> pa.Table:
    """The ``DIMENSIONS`` rows of one workspace's dimension versions."""
    return pa.Table.from_pydict(
        {
            "org_id": [org_id] * len(versions),
            "kind": [version[0] for version in versions],
            "entity_id": [version[1] for version in versions],
            "occurred_ms": [version[2] for version in versions],
            "event_id": [version[3] for version in versions],
            "deleted": [bool(version[4].get("deleted", False)) for version in versions],
            "attributes": [codec.dumps(version[4]).decode() for version in versions],
        },
        schema=DIMENSIONS,
    )
