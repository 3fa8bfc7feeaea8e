"""Export destinations: other buckets (other stores, other credentials) an export is
copied to, read from ``USAGE_DESTINATION_<NAME>_*`` environment variables.

The names are the operator's, so they cannot be fields of the one settings model
(``shared.settings``); this module reads them once, in one place, the same way:

* ``USAGE_DESTINATION_<NAME>_BUCKET`` (required: it is what declares ``<NAME>``),
* ``_ENDPOINT`` (default ``USAGE_S3_ENDPOINT``), ``_REGION`` (default ``USAGE_S3_REGION``),
  ``_PREFIX`` (default none),
* ``_ACCESS_KEY_ID`` and ``_SECRET_ACCESS_KEY``: both or neither (neither: the default
  AWS credential chain, as for the main store; never the main store's keys).

``<NAME>`` is the request's ``destination`` in upper case (``acme_archive`` is
``USAGE_DESTINATION_ACME_ARCHIVE_BUCKET``). Credentials stay here: requests and schedules
carry the name only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from pydantic import SecretStr

from shared.contracts.destinations import DESTINATION_RULE, is_destination_name
from shared.errors import ConfigurationError
from shared.settings import Settings

_PREFIX: Final = "USAGE_DESTINATION_"
# Longest first: a name may end in a word another suffix starts with.
_SUFFIXES: Final = (
    "SECRET_ACCESS_KEY",
    "ACCESS_KEY_ID",
    "ENDPOINT",
    "BUCKET",
    "PREFIX",
    "REGION",
)


class DestinationConfigError(ConfigurationError):
    """A ``USAGE_DESTINATION_*`` variable set that does not describe a destination."""


@dataclass(frozen=True, slots=True)
class Destination:
    """One configured destination (the secret key never in a repr or a log)."""

    name: str
    bucket: str
    endpoint: str | None = None
    region: str | None = None
    prefix: str = ""
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = field(default=None, repr=False)

    def object_key(self, data_type: str, period: str, filename: str) -> str:
        """``{prefix}/{type}/{period}/{filename}`` (no leading slash without a prefix).
        Raises ValueError unless each of the three is one plain path segment, so that no
        value can move the copy out of ``{prefix}/`` (``..``, ``/``, ``\\``)."""
        for part in (data_type, period, filename):
            if not _is_segment(part):
                raise ValueError(f"{part!r} is not a plain key segment of a destination copy")
        parts = [self.prefix.strip("/"), data_type, period, filename]
        return "/".join(part for part in parts if part)

    def store_settings(self, settings: Settings) -> Settings:
        """``settings`` pointed at this destination: its endpoint, region and keys only."""
        return settings.model_copy(
            update={
                "s3_endpoint": self.endpoint or settings.s3_endpoint,
                "s3_region": self.region or settings.s3_region,
                "s3_access_key": (
                    None if self.access_key_id is None else SecretStr(self.access_key_id)
                ),
                "s3_secret_key": self.secret_access_key,
            }
        )


_SEGMENT_RE: Final = re.compile(r"[A-Za-z0-9_.:=+-]+", re.ASCII)


def _is_segment(part: str) -> bool:
    """One key segment: no separator, no control character, not ``.`` or ``..``."""
    return _SEGMENT_RE.fullmatch(part) is not None and part not in {".", ".."}


def _prefix_problem(prefix: str) -> str | None:
    segments = prefix.strip("/").split("/")
    if prefix.strip("/") and not all(_is_segment(segment) for segment in segments):
        return (
            "must be key segments of [A-Za-z0-9_.:=+-] separated by single '/', none of "
            "them '.' or '..'"
        )
    return None


def _split(variable: str) -> tuple[str, str] | None:
    rest = variable[len(_PREFIX) :]
    for suffix in _SUFFIXES:
        if rest.endswith("_" + suffix) and len(rest) > len(suffix) + 1:
            return rest[: -len(suffix) - 1].lower(), suffix
    return None


def parse_destinations(environ: Mapping[str, str]) -> dict[str, Destination]:
    """Every destination ``environ`` declares, by name. Raises
    :class:`DestinationConfigError` for an unknown variable, a bad name, a missing bucket
    or a lone key."""
    found: dict[str, dict[str, str]] = {}
    for variable, value in environ.items():
        if not variable.startswith(_PREFIX):
            continue
        split = _split(variable)
        if split is None:
            raise DestinationConfigError(
                f"{variable} is not a destination setting: use {_PREFIX}<NAME>_"
                f"{{{','.join(_SUFFIXES)}}}"
            )
        name, suffix = split
        if not is_destination_name(name):
            raise DestinationConfigError(
                f"{variable}: destination name {name!r} must be {DESTINATION_RULE} "
                "(upper case in the variable)"
            )
        found.setdefault(name, {})[suffix] = value
    destinations: dict[str, Destination] = {}
    for name, values in sorted(found.items()):
        variable = f"{_PREFIX}{name.upper()}"
        bucket = values.get("BUCKET", "")
        if not bucket:
            raise DestinationConfigError(f"{variable}_BUCKET is required for destination {name}")
        key_id, secret = values.get("ACCESS_KEY_ID"), values.get("SECRET_ACCESS_KEY")
        if (key_id is None) != (secret is None):
            raise DestinationConfigError(
                f"set both {variable}_ACCESS_KEY_ID and {variable}_SECRET_ACCESS_KEY, or "
                "neither (neither: the default AWS credential chain)"
            )
        prefix = values.get("PREFIX", "")
        if (problem := _prefix_problem(prefix)) is not None:
            raise DestinationConfigError(f"{variable}_PREFIX {prefix!r} {problem}")
        destinations[name] = Destination(
            name=name,
            bucket=bucket,
            endpoint=values.get("ENDPOINT") or None,
            region=values.get("REGION") or None,
            prefix=prefix,
            access_key_id=key_id,
            secret_access_key=None if secret is None else SecretStr(secret),
        )
    return destinations


def load_destinations() -> dict[str, Destination]:
    """The destinations of this process's environment."""
    return parse_destinations(os.environ)
