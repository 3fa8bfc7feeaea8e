"""The CSV side of contract §5 that is not a query: the column specs (``columns``: names,
order, BYOK extras, privacy omissions, subgroups), the workspace settings that shape an
export (``context``) and the keys of the exports bucket (``paths``). The rows themselves
are computed by one query per export type (``shared.columnar.queries``), whose header
explains the decisions where the contract is silent; they match ``tests/reference``.
"""
