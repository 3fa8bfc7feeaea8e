"""Facts: the compact, normalised form of an activity event that the fold consumes.

Activity events (``message``, ``api_request``, ``payg_consumption``) are turned into
plain tuples once, on ingest. The same tuples are kept, one JSON array a line, in each
day's detail object: they are the day's dedup set (their ``event_id``) and the sub-day
detail the exporter folds for the partial days at a window's two ends. Keeping facts
rather than pre-bucketed quarter hours costs about the same space and lets the
exporter honour any window exactly.

Money is held as integer nano-dollars (1e-9 USD) so sums are exact and associative;
amounts with more than 9 decimals are rounded half-even on ingest.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

from shared import codec
from shared.contracts.events import (
    ApiRequestEvent,
    MessageEvent,
    PaygConsumption,
    epoch_ms,
)

NANO: Final = 10**9

MESSAGE: Final = "m"
API_REQUEST: Final = "a"
PAYG: Final = "p"

# Field positions shared by every fact.
KIND, EVENT_ID, TS = 0, 1, 2

# message: (m, event_id, ts_ms, user, assistant|None, project|None, conversation|None,
#           model, provider, byok, deployment, source, actions, requests,
#           prompt, completion, cached, creation, cost_nano)
# api_request: (a, event_id, ts_ms, api_key, model, provider, byok, deployment, source,
#               requests, prompt, completion, cached, creation, cost_nano)
# payg: (p, event_id, ts_ms, user, amount_nano)
Fact = tuple[Any, ...]


def to_nano(amount: float) -> int:
    """Exact nano-dollars of a JSON number (via its shortest decimal representation,
    half to even past the ninth decimal)."""
    if amount == 0:
        return 0
    text = repr(amount)
    whole, _, fraction = text.partition(".")
    if len(fraction) <= 9 and "e" not in text and "n" not in text:
        # The common case, exactly and without Decimal: shift the point by nine digits.
        return int(whole + fraction.ljust(9, "0"))
    return int(Decimal(text).scaleb(9).to_integral_value())


def nano_to_decimal(value: int) -> Decimal:
    return Decimal(value).scaleb(-9)


# One converter per kind, each tuple spelled out in FACTS column order (they look alike).
def fact_from_message(event: MessageEvent) -> Fact:
    usage = event.usage
    actions = sorted(set(event.actions))
    return (
        MESSAGE,
        event.event_id,
        epoch_ms(event.occurred_at),
        event.user_id,
        event.assistant_id,
        event.project_id,
        event.conversation_id,
        event.model,
        event.provider,
        event.byok,
        event.deployment or "",
        event.source.upper(),
        actions,
        event.requests,
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cached_prompt_tokens,
        usage.cache_creation_tokens,
        to_nano(usage.cost_usd),
    )


def fact_from_api_request(event: ApiRequestEvent) -> Fact:
    usage = event.usage
    return (
        API_REQUEST,
        event.event_id,
        epoch_ms(event.occurred_at),
        event.api_key_id,
        event.model,
        event.provider,
        event.byok,
        event.deployment or "",
        event.source.upper(),
        event.requests,
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cached_prompt_tokens,
        usage.cache_creation_tokens,
        to_nano(usage.cost_usd),
    )


def fact_from_payg(event: PaygConsumption) -> Fact:
    return (PAYG, event.event_id, epoch_ms(event.occurred_at), event.user_id, to_nano(event.amount))


def encode_fact(fact: Fact) -> bytes:
    """One fact's line (with its newline)."""
    return codec.dumps(fact) + b"\n"


def encode_facts(facts: list[Fact]) -> bytes:
    """One JSON array a line; concatenating two encodings is the encoding of both."""
    return b"".join(codec.dumps(fact) + b"\n" for fact in facts)


def decode_facts(data: bytes) -> list[Fact]:
    return [tuple(codec.loads(line)) for line in data.splitlines() if line]
