"""The ApiVersions probe's wire format, without a broker."""

from __future__ import annotations

import struct

import pytest

from shared.embedded.kafka_probe import encode_api_versions_request, parse_api_versions_response


def test_request_is_size_prefixed_api_versions_v0_with_client_id() -> None:
    frame = encode_api_versions_request(correlation_id=7)
    (size,) = struct.unpack_from(">i", frame)
    assert size == len(frame) - 4
    key, version, correlation, id_length = struct.unpack_from(">hhih", frame, 4)
    assert (key, version, correlation) == (18, 0, 7)
    assert frame[14:] == b"usage-export-probe"
    assert id_length == len(frame[14:])


def _response(correlation: int, error: int, entries: list[tuple[int, int, int]]) -> bytes:
    body = struct.pack(">ihi", correlation, error, len(entries))
    return body + b"".join(struct.pack(">hhh", *entry) for entry in entries)


def test_parses_the_supported_version_ranges() -> None:
    payload = _response(3, 0, [(0, 0, 11), (18, 0, 4)])
    assert parse_api_versions_response(payload, 3) == {0: (0, 11), 18: (0, 4)}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (_response(4, 0, [(0, 0, 1)]), "correlation id"),
        (_response(3, 35, []), "error code 35"),
        (_response(3, 0, [(0, 0, 1)])[:-2], "truncated"),
        (b"\x00\x00", "too short"),
    ],
)
def test_rejects_anything_but_a_successful_answer(payload: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_api_versions_response(payload, 3)
