"""The aggregate fold: ``Aggregate()`` is empty, ``add(fact)`` folds one fact in,
``merge(other)`` folds another aggregate in.

One aggregate holds, for one workspace and one span of time (a UTC day, or a window
being exported), everything the five exports need — counts, sums, min/max and exact
sets for distinct counts — at the finest grain any export asks for (per entity and
model; per model, provider, BYOK state, source and deployment). Coarser rows are merges
of finer ones. ``add`` and ``merge`` are associative and commutative, so days can be
folded in any order and merging day aggregates equals folding the facts directly.

Stats are kept in small lists rather than objects: this is the ingest hot path, and
list slots cost a fraction of attribute access on per-event objects.
"""

from __future__ import annotations

from typing import Any

from shared.domain.facts import API_REQUEST, MESSAGE, PAYG, Fact

# ---- users: per (user, model) ---------------------------------------------------------
U_TOTAL, U_CHAT, U_ASSISTANTS, U_PROJECTS, U_ACTION_MESSAGES = 0, 1, 2, 3, 4
U_PROMPT, U_COMPLETION, U_CACHED, U_CREATION, U_COST = 5, 6, 7, 8, 9
U_BY_ASSISTANT, U_BY_PROJECT, U_BY_ACTION = 10, 11, 12
_U_NUMBERS = 10
#: The layout of the stats lists below. Bump it when one changes: month rollups carry it
#: and are rebuilt rather than misread (day heads are rewritten by replay).
AGGREGATE_FORMAT = 1

# ---- user totals: per user, over models (derived, for exports: see collapse_users) ----
# The user stats above, then model -> messages.
T_BY_MODEL = 13

# ---- agents: per (assistant, model) ---------------------------------------------------
A_MESSAGES, A_PROMPT, A_PROMPT_MIN, A_PROMPT_MAX = 0, 1, 2, 3
A_COMPLETION, A_COMPLETION_MIN, A_COMPLETION_MAX, A_CACHED, A_CREATION = 4, 5, 6, 7, 8
A_USERS = 9
_A_SUMS = (A_MESSAGES, A_PROMPT, A_COMPLETION, A_CACHED, A_CREATION)

# ---- API keys: per (key, model) -------------------------------------------------------
K_REQUESTS, K_COST, K_PROMPT, K_COMPLETION, K_CACHED, K_CREATION = 0, 1, 2, 3, 4, 5

# ---- models: per (model, provider, byok, source, deployment) ---------------------------
M_REQUESTS, M_PROMPT, M_COMPLETION, M_CACHED, M_CREATION, M_COST = 0, 1, 2, 3, 4, 5

ModelKey = tuple[str, str, bool, str, str]


def _new_user_stats() -> list[Any]:
    return [0] * _U_NUMBERS + [{}, {}, {}]


def add_counts(into: dict[str, int], other: dict[str, int]) -> None:
    for key, count in other.items():
        into[key] = into.get(key, 0) + count


class Aggregate:
    """Mergeable usage statistics of one workspace over one span of time."""

    __slots__ = (
        "agent_conversations",
        "agents",
        "api_keys",
        "models",
        "payg",
        "projects",
        "user_totals",
        "users",
    )

    def __init__(self) -> None:
        self.users: dict[str, dict[str, list[Any]]] = {}
        # Never folded from facts: filled by collapse_users for the exports that need
        # only per-user totals (the users export without group_by; month rollups).
        self.user_totals: dict[str, list[Any]] = {}
        self.payg: dict[str, int] = {}
        self.agents: dict[str, dict[str, list[Any]]] = {}
        self.agent_conversations: dict[str, set[str]] = {}
        self.api_keys: dict[str, dict[str, list[int]]] = {}
        self.projects: dict[str, int] = {}
        self.models: dict[ModelKey, list[int]] = {}

    # ---- folding facts ----------------------------------------------------------------
    def add(self, fact: Fact) -> None:
        kind = fact[0]
        if kind == MESSAGE:
            self._add_message(fact)
        elif kind == API_REQUEST:
            self._add_api_request(fact)
        elif kind == PAYG:
            user = fact[3]
            amount = fact[4]
            self.payg[user] = self.payg.get(user, 0) + amount
        else:  # pragma: no cover - facts are produced by shared.domain.facts only
            raise ValueError(f"unknown fact kind {kind!r}")

    def _add_message(self, fact: Fact) -> None:
        (
            _,
            _,
            _,
            user,
            assistant,
            project,
            conversation,
            model,
            provider,
            byok,
            deployment,
            source,
            actions,
            requests,
            prompt,
            completion,
            cached,
            creation,
            cost,
        ) = fact
        by_model = self.users.get(user)
        if by_model is None:
            by_model = self.users[user] = {}
        stats = by_model.get(model)
        if stats is None:
            stats = by_model[model] = _new_user_stats()
        stats[U_TOTAL] += 1
        if assistant is None and project is None:
            stats[U_CHAT] += 1
        if assistant is not None:
            stats[U_ASSISTANTS] += 1
            by_assistant = stats[U_BY_ASSISTANT]
            by_assistant[assistant] = by_assistant.get(assistant, 0) + 1
            self._add_agent_message(
                assistant, model, user, conversation, prompt, completion, cached, creation
            )
        if project is not None:
            stats[U_PROJECTS] += 1
            by_project = stats[U_BY_PROJECT]
            by_project[project] = by_project.get(project, 0) + 1
            self.projects[project] = self.projects.get(project, 0) + 1
        if actions:
            stats[U_ACTION_MESSAGES] += 1
            by_action = stats[U_BY_ACTION]
            for action in actions:
                by_action[action] = by_action.get(action, 0) + 1
        stats[U_PROMPT] += prompt
        stats[U_COMPLETION] += completion
        stats[U_CACHED] += cached
        stats[U_CREATION] += creation
        stats[U_COST] += cost
        self._add_model(
            model,
            provider,
            byok,
            source,
            deployment,
            requests,
            prompt,
            completion,
            cached,
            creation,
            cost,
        )

    def _add_agent_message(
        self,
        assistant: str,
        model: str,
        user: str,
        conversation: str | None,
        prompt: int,
        completion: int,
        cached: int,
        creation: int,
    ) -> None:
        by_model = self.agents.get(assistant)
        if by_model is None:
            by_model = self.agents[assistant] = {}
        stats = by_model.get(model)
        if stats is None:
            by_model[model] = [
                1,
                prompt,
                prompt,
                prompt,
                completion,
                completion,
                completion,
                cached,
                creation,
                {user},
            ]
        else:
            stats[A_MESSAGES] += 1
            stats[A_PROMPT] += prompt
            if prompt < stats[A_PROMPT_MIN]:
                stats[A_PROMPT_MIN] = prompt
            if prompt > stats[A_PROMPT_MAX]:
                stats[A_PROMPT_MAX] = prompt
            stats[A_COMPLETION] += completion
            if completion < stats[A_COMPLETION_MIN]:
                stats[A_COMPLETION_MIN] = completion
            if completion > stats[A_COMPLETION_MAX]:
                stats[A_COMPLETION_MAX] = completion
            stats[A_CACHED] += cached
            stats[A_CREATION] += creation
            stats[A_USERS].add(user)
        if conversation is not None:
            conversations = self.agent_conversations.get(assistant)
            if conversations is None:
                self.agent_conversations[assistant] = {conversation}
            else:
                conversations.add(conversation)

    def _add_api_request(self, fact: Fact) -> None:
        (
            _,
            _,
            _,
            key,
            model,
            provider,
            byok,
            deployment,
            source,
            requests,
            prompt,
            completion,
            cached,
            creation,
            cost,
        ) = fact
        by_model = self.api_keys.get(key)
        if by_model is None:
            by_model = self.api_keys[key] = {}
        stats = by_model.get(model)
        if stats is None:
            by_model[model] = [requests, cost, prompt, completion, cached, creation]
        else:
            stats[K_REQUESTS] += requests
            stats[K_COST] += cost
            stats[K_PROMPT] += prompt
            stats[K_COMPLETION] += completion
            stats[K_CACHED] += cached
            stats[K_CREATION] += creation
        self._add_model(
            model,
            provider,
            byok,
            source,
            deployment,
            requests,
            prompt,
            completion,
            cached,
            creation,
            cost,
        )

    def _add_model(
        self,
        model: str,
        provider: str,
        byok: bool,
        source: str,
        deployment: str,
        requests: int,
        prompt: int,
        completion: int,
        cached: int,
        creation: int,
        cost: int,
    ) -> None:
        key = (model, provider, byok, source, deployment)
        stats = self.models.get(key)
        if stats is None:
            self.models[key] = [requests, prompt, completion, cached, creation, cost]
        else:
            stats[M_REQUESTS] += requests
            stats[M_PROMPT] += prompt
            stats[M_COMPLETION] += completion
            stats[M_CACHED] += cached
            stats[M_CREATION] += creation
            stats[M_COST] += cost

    # ---- merging aggregates -------------------------------------------------------------
    def merge(self, other: Aggregate) -> None:
        """Fold ``other`` into this aggregate (``other`` is left unchanged)."""
        for user, other_models in other.users.items():
            by_model = self.users.setdefault(user, {})
            for model, theirs in other_models.items():
                mine = by_model.get(model)
                if mine is None:
                    by_model[model] = mine = _new_user_stats()
                merge_user_stats(mine, theirs)
        for user, their_t in other.user_totals.items():
            mine_t = self.user_totals.get(user)
            if mine_t is None:
                self.user_totals[user] = mine_t = _new_user_totals()
            merge_user_totals(mine_t, their_t)
        add_counts(self.payg, other.payg)
        for assistant, other_models in other.agents.items():
            by_model = self.agents.setdefault(assistant, {})
            for model, theirs in other_models.items():
                mine = by_model.get(model)
                if mine is None:
                    by_model[model] = [*theirs[:A_USERS], set(theirs[A_USERS])]
                else:
                    merge_agent_stats(mine, theirs)
        for assistant, conversations in other.agent_conversations.items():
            self.agent_conversations.setdefault(assistant, set()).update(conversations)
        for key, other_models in other.api_keys.items():
            by_model_k = self.api_keys.setdefault(key, {})
            for model, their_k in other_models.items():
                mine_k = by_model_k.get(model)
                if mine_k is None:
                    by_model_k[model] = list(their_k)
                else:
                    add_sums(mine_k, their_k)
        add_counts(self.projects, other.projects)
        for model_key, their_m in other.models.items():
            mine_m = self.models.get(model_key)
            if mine_m is None:
                self.models[model_key] = list(their_m)
            else:
                add_sums(mine_m, their_m)

    # ---- persistence --------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form; sets become sorted lists so equal aggregates encode equally.
        ``user_totals`` appears only when there are some (never in day heads)."""
        document = {
            "users": self.users,
            "payg": self.payg,
            "agents": {
                assistant: {
                    model: [*stats[:A_USERS], sorted(stats[A_USERS])]
                    for model, stats in by_model.items()
                }
                for assistant, by_model in self.agents.items()
            },
            "agent_conversations": {
                assistant: sorted(conversations)
                for assistant, conversations in self.agent_conversations.items()
            },
            "api_keys": self.api_keys,
            "projects": self.projects,
            "models": [[*key, *stats] for key, stats in self.models.items()],
        }
        if self.user_totals:
            document["user_totals"] = self.user_totals
        return document

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Aggregate:
        aggregate = cls()
        aggregate.users = data.get("users") or {}
        aggregate.user_totals = data.get("user_totals") or {}
        aggregate.payg = data.get("payg") or {}
        aggregate.agents = {
            assistant: {
                model: [*stats[:A_USERS], set(stats[A_USERS])] for model, stats in by_model.items()
            }
            for assistant, by_model in (data.get("agents") or {}).items()
        }
        aggregate.agent_conversations = {
            assistant: set(conversations)
            for assistant, conversations in (data.get("agent_conversations") or {}).items()
        }
        aggregate.api_keys = data.get("api_keys") or {}
        aggregate.projects = data.get("projects") or {}
        aggregate.models = {
            (row[0], row[1], row[2], row[3], row[4]): row[5:] for row in data.get("models") or []
        }
        return aggregate

    def is_empty(self) -> bool:
        return not (self.users or self.user_totals or self.payg or self.api_keys or self.models)


def merge_user_stats(mine: list[Any], theirs: list[Any]) -> None:
    # Unrolled, and empty count maps skipped: this runs for every (user, model) of every
    # document an export merges.
    mine[0] += theirs[0]
    mine[1] += theirs[1]
    mine[2] += theirs[2]
    mine[3] += theirs[3]
    mine[4] += theirs[4]
    mine[5] += theirs[5]
    mine[6] += theirs[6]
    mine[7] += theirs[7]
    mine[8] += theirs[8]
    mine[9] += theirs[9]
    if theirs[U_BY_ASSISTANT]:
        add_counts(mine[U_BY_ASSISTANT], theirs[U_BY_ASSISTANT])
    if theirs[U_BY_PROJECT]:
        add_counts(mine[U_BY_PROJECT], theirs[U_BY_PROJECT])
    if theirs[U_BY_ACTION]:
        add_counts(mine[U_BY_ACTION], theirs[U_BY_ACTION])


def _new_user_totals() -> list[Any]:
    return [0] * _U_NUMBERS + [{}, {}, {}, {}]


def merge_user_totals(mine: list[Any], theirs: list[Any]) -> None:
    merge_user_stats(mine, theirs)
    add_counts(mine[T_BY_MODEL], theirs[T_BY_MODEL])


def collapse_users(
    users: dict[str, dict[str, list[Any]]], into: dict[str, list[Any]] | None = None
) -> dict[str, list[Any]]:
    """Per-user totals over models of per-(user, model) stats, added to ``into`` (a new
    dict by default): the user stats summed, then model -> messages. ``users`` is left
    unchanged. What the users export without ``group_by`` reads: a twentieth of the
    entries of a workspace whose users each use twenty models."""
    totals: dict[str, list[Any]] = {} if into is None else into
    for user, by_model in users.items():
        mine = totals.get(user)
        if mine is None:
            totals[user] = mine = _new_user_totals()
        messages = mine[T_BY_MODEL]
        for model, stats in by_model.items():
            merge_user_stats(mine, stats)
            messages[model] = messages.get(model, 0) + stats[U_TOTAL]
    return totals


def add_sums(mine: list[int], theirs: list[int]) -> None:
    for index, value in enumerate(theirs):
        mine[index] += value


def merge_agent_stats(mine: list[Any], theirs: list[Any]) -> None:
    for index in _A_SUMS:
        mine[index] += theirs[index]
    mine[A_PROMPT_MIN] = min(mine[A_PROMPT_MIN], theirs[A_PROMPT_MIN])
    mine[A_PROMPT_MAX] = max(mine[A_PROMPT_MAX], theirs[A_PROMPT_MAX])
    mine[A_COMPLETION_MIN] = min(mine[A_COMPLETION_MIN], theirs[A_COMPLETION_MIN])
    mine[A_COMPLETION_MAX] = max(mine[A_COMPLETION_MAX], theirs[A_COMPLETION_MAX])
    mine[A_USERS].update(theirs[A_USERS])
