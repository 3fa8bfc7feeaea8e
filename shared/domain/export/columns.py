"""The header row of contract §5 (docs/contract.md): the three fixed columns (and the two
bucket columns after ``period_end`` in a bucketed export), then each type's columns as its
:class:`~shared.contracts.export_types.ExportSpec` lists them, with the BYOK extras, the
privacy omissions and the subgroup rules applied."""

from __future__ import annotations

from typing import Final

from shared.contracts.export_buckets import BUCKET_COLUMNS
from shared.contracts.export_types import DataType, spec

HEAD: Final = ("period_start", "period_end", "org_id")


def header(
    data_type: DataType,
    *,
    byok: bool,
    user_level_data: bool,
    group_by: str | None,
    bucketed: bool = False,
) -> list[str]:
    """The header row of one export, in contract order."""
    export = spec(data_type)
    head = [*HEAD[:2], *BUCKET_COLUMNS, *HEAD[2:]] if bucketed else list(HEAD)
    columns = [*head, *export.columns, *(export.byok_columns if byok else ())]
    if not user_level_data:
        columns = [column for column in columns if column not in export.private]
    if group_by is None:
        return columns
    columns = [column for column in columns if column not in export.omitted_when_grouped]
    if export.subgroup_after is None:
        raise ValueError(f"{data_type} exports have no subgroups")
    at = columns.index(export.subgroup_after) + 1
    return [*columns[:at], group_by, *columns[at:]]
