"""Rows of the models export: one per (model, provider, BYOK state[, source or
deployment]) seen in the window. Models have rows only from activity."""

from __future__ import annotations

from shared.domain.aggregate import (
    M_CACHED,
    M_COMPLETION,
    M_COST,
    M_CREATION,
    M_PROMPT,
    M_REQUESTS,
)
from shared.domain.export import cells
from shared.domain.export.context import ExportInputs, Row, RowKey

_SUBGROUP_POSITION = {"source": 3, "deployment": 4}


class ModelRows:
    """Row source of the models export; the aggregate's finest grain is merged up front."""

    def __init__(self, inputs: ExportInputs) -> None:
        self._group_by = inputs.group_by
        position = _SUBGROUP_POSITION.get(inputs.group_by or "")
        self._rows: dict[tuple[str, str, bool, str], list[int]] = {}
        for key, stats in inputs.aggregate.models.items():
            value = str(key[position]) if position is not None else ""
            identity = (key[0], key[1], bool(key[2]), value)
            mine = self._rows.get(identity)
            if mine is None:
                self._rows[identity] = list(stats)
            else:
                for index, figure in enumerate(stats):
                    mine[index] += figure

    def keys(self) -> list[RowKey]:
        return [(stats[M_REQUESTS], identity) for identity, stats in self._rows.items()]

    def row(self, key: RowKey) -> Row:
        model, provider, byok, value = key[1]
        stats = self._rows[(model, provider, byok, value)]
        prompt, cached, creation = stats[M_PROMPT], stats[M_CACHED], stats[M_CREATION]
        row = {
            "name": model,
            "provider": provider,
            "bring_your_keys": cells.boolean(byok),
            "requests": cells.integer(stats[M_REQUESTS]),
            "sum_prompt_tokens": cells.integer(prompt),
            "sum_completion_tokens": cells.integer(stats[M_COMPLETION]),
            "sum_cached_prompt_tokens": cells.integer(cached),
            "sum_cache_creation_tokens": cells.integer(creation),
            "no_cache_tokens": cells.integer(prompt - cached - creation),
            "total_cost_usd": cells.money(stats[M_COST]),
        }
        if self._group_by is not None:
            row[self._group_by] = value
        return row
