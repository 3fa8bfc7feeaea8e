"""The CSV side of contract §5, as pure functions: column specs, cell formats and row
builders from a merged :class:`~shared.domain.aggregate.Aggregate` plus the dimension
histories as of the window's end. Nothing here touches Kafka or S3.

Decisions where the contract is silent (they match ``tests/reference``):

* Attributes are those of the latest upsert strictly before the window's end (the same
  exclusive bound events are counted against), else the earliest known; a deletion
  upsert's own attributes are shown. An entity *exists* when that upsert is before the
  end and not deleted.
* Agents' ``active_users``: senders whose latest upsert before the end is not a
  deletion; a sender without any upsert before the end counts as active.
* Values: money to 6 decimals and averages/percentages to 2, half-even, applied once to
  the exact value (money is exact integer nano-dollars until then); money always shows
  its 6 decimals. Empty cells: avg/min/max over no messages, ``messages_per_user`` with
  no active user, ``payg_limit_current`` without a limit, the utilisation without a
  limit or with a limit of 0. Sums over nothing are ``0`` / ``0.000000``.
* JSON columns: compact, keys in ascending code-point order, non-ASCII as UTF-8, values
  integers; a message listing an action twice counts once for it.
* Subgroups: an entity with no activity in the subgroup's dimension gets exactly one row
  with an empty subgroup value; a null deployment is ``""``. Rows sort by their own
  (per-subgroup) main count, then id, then subgroup value, so one entity's rows need not
  be adjacent. Ranks are over all rows, zero counts included.
* Sorting compares strings by code point (not locale); ``bring_your_keys`` false first.
* The formula guard applies to every cell; numbers, dates and JSON never start with a
  guarded character, so in practice only text is prefixed.
"""
