"""Usage-Export-Signature: vectors computed with openssl, two secrets during a rotation,
verification's refusals, and the receiver example of docs/contract.md, executed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.domain.webhooks.signature import mac, parse, sign, verify

BODY = b'{"request_id":"r-1"}'
T = 1767225600
# printf '%s' '1767225600.{"request_id":"r-1"}' | openssl dgst -sha256 -hmac whsec_test
NEW = "b3a1e6eaab6355ee8693eb864b6d31ec4c223650f29f53d007d768cf98a5cac6"
OLD = "1f343ef39f0edd2658a1cb12cf455dea6431c674a8c93894e7c3a912037f27e4"
CONTRACT = Path(__file__).parents[2] / "docs" / "contract.md"


def test_one_secret_matches_the_openssl_vector() -> None:
    assert mac(BODY, "whsec_test", T) == NEW
    assert sign(BODY, ["whsec_test"], T) == f"t={T},v1={NEW}"


def test_two_secrets_sign_newest_first_and_each_verifies() -> None:
    header = sign(BODY, ["whsec_test", "whsec_old"], T)
    assert header == f"t={T},v1={NEW},v1={OLD}"
    assert verify(header, BODY, "whsec_test", now=T)
    assert verify(header, BODY, "whsec_old", now=T + 299)
    assert not verify(header, BODY, "whsec_other", now=T)


def test_verification_refuses_a_changed_body_an_old_t_and_garbage() -> None:
    header = sign(BODY, ["whsec_test"], T)
    assert not verify(header, BODY + b" ", "whsec_test", now=T)
    assert not verify(header, BODY, "whsec_test", now=T + 301)
    assert not verify(header, BODY, "whsec_test", now=T - 301)
    assert verify(header, BODY, "whsec_test", now=T + 3600, tolerance_s=3600)
    forged = header.replace(f"t={T}", f"t={T + 10}")
    assert not verify(forged, BODY, "whsec_test", now=T + 10)
    for bad in ("", "t=abc,v1=00", f"v1={NEW}", f"t={T}", "nonsense", f"t=-{T},v1={NEW}"):
        assert parse(bad) is None
        assert not verify(bad, BODY, "whsec_test", now=T)


def test_signing_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        sign(BODY, [], T)


def test_the_receiver_example_in_the_contract_runs_and_verifies() -> None:
    text = CONTRACT.read_text()
    found = re.search(r"<!-- receiver-example -->\s*```python\n(.*?)```", text, re.S)
    assert found is not None, "docs/contract.md lost its receiver example"
    namespace: dict[str, object] = {}
    exec(compile(found.group(1), "contract-example", "exec"), namespace)  # noqa: S102 - our docs
    verified = namespace["verified"]
    assert callable(verified)
    header = sign(BODY, ["whsec_test", "whsec_old"], T)
    assert verified(BODY, header, "whsec_old", now=T) is True
    assert verified(BODY, header, "whsec_test", now=T + 10) is True
    assert verified(BODY + b"x", header, "whsec_test", now=T) is False
    assert verified(BODY, header, "whsec_test", now=T + 3600) is False
    assert verified(BODY, "t=1,v1=zz", "whsec_test", now=T) is False


def test_the_receiver_example_refuses_odd_timestamps_instead_of_raising() -> None:
    text = CONTRACT.read_text()
    found = re.search(r"<!-- receiver-example -->\s*```python\n(.*?)```", text, re.S)
    assert found is not None
    namespace: dict[str, object] = {}
    exec(compile(found.group(1), "contract-example", "exec"), namespace)  # noqa: S102 - our docs
    verified = namespace["verified"]
    assert callable(verified)
    mac_t = mac(BODY, "whsec_test", T)
    for header in ("t=\u00b2,v1=00", f"t=,v1={mac_t}", "t=1 ,v1=00"):
        assert verified(BODY, header, "whsec_test", now=T) is False  # "²".isdigit(): int raised
