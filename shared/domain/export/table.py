"""An export as a table: its header, its rows in contract order, cells built lazily.

Sorting needs only each row's main count and identity, so those are computed for every
row up front and the cells of a row only when it is written: the CSV text of a large
export never has to exist in memory all at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from shared.contracts.requests import DataType
from shared.domain.export.columns import header
from shared.domain.export.context import ExportInputs, RowKey, RowSource
from shared.domain.export.entities import AgentRows, ApiKeyRows, ProjectRows
from shared.domain.export.models import ModelRows
from shared.domain.export.users import UserRows

_SOURCES: dict[DataType, Callable[[ExportInputs], RowSource]] = {
    DataType.USERS: UserRows,
    DataType.ASSISTANTS: AgentRows,
    DataType.API_KEYS: ApiKeyRows,
    DataType.PROJECTS: ProjectRows,
    DataType.MODELS: ModelRows,
}


def _order(key: RowKey) -> tuple[int, tuple[object, ...]]:
    """Main count descending, then identity ascending (code points; False before True)."""
    return -key[0], key[1]


@dataclass(frozen=True, slots=True)
class ExportTable:
    header: list[str]
    keys: list[RowKey]
    source: RowSource
    fixed: dict[str, str]

    def __len__(self) -> int:
        return len(self.keys)

    def rows(self) -> Iterator[list[str]]:
        """Cell texts of each row, in header order (the formula guard is the writer's)."""
        columns = self.header
        fixed = self.fixed
        for key in self.keys:
            row = fixed | self.source.row(key)
            yield [row[column] for column in columns]


def build_table(inputs: ExportInputs) -> ExportTable:
    source = _SOURCES[inputs.data_type](inputs)
    keys = sorted(source.keys(), key=_order)
    columns = header(
        inputs.data_type,
        byok=inputs.options.byok,
        user_level_data=inputs.options.user_level_data,
        group_by=inputs.group_by,
    )
    fixed = {
        "period_start": inputs.period_start,
        "period_end": inputs.period_end,
        "org_id": inputs.org_id,
    }
    return ExportTable(header=columns, keys=keys, source=source, fixed=fixed)
