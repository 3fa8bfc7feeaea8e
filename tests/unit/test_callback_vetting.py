"""Callback URLs at request and delivery time: shape, bounded resolution, and every
resolved address judged (a resolver is injected: no network)."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from shared.adapters.callback_vetting import CallbackRefused, CallbackVetter
from shared.domain.webhooks.addresses import IPAddress
from shared.settings import Settings


def resolver(*texts: str, delay_s: float = 0.0) -> tuple[CallbackVetter, list[str]]:
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[IPAddress]:
        asked.append(f"{host}:{port}")
        await asyncio.sleep(delay_s)
        if not texts:
            raise OSError("Name or service not known")
        return [ipaddress.ip_address(text) for text in texts]

    vetter = CallbackVetter(
        allow_private=False, allow_http=False, dns_timeout_s=0.2, resolve=resolve
    )
    return vetter, asked


async def test_a_public_host_is_vetted_with_its_first_address() -> None:
    vetter, asked = resolver("93.184.216.34", "2606:2800:220:1::1")
    vetted = await vetter.vet("https://hooks.example.com/usage?x=1")
    assert vetted.address == ipaddress.ip_address("93.184.216.34")
    assert vetted.target.host == "hooks.example.com"
    assert asked == ["hooks.example.com:443"]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.com/", "must use https"),
        ("ftp://hooks.example.com/", "must use https"),
        ("https:///nohost", "no host"),
        ("https://user:pw@hooks.example.com/", "user info"),
        ("https://hooks.example.com/#frag", "fragment"),
        ("https://hooks.example.com:99999/", "not a URL"),
        ("https://hooks.example.com:0/", "port 0"),  # was vetted for 443, sent to :0
        ("https://hooks.example.com/ a", "without spaces"),
        ("https://hooks.example.com/" + "a" * 2048, "longer than"),
        (42, "must be a string"),
    ],
)
async def test_malformed_urls_are_refused_before_any_lookup(url: object, why: str) -> None:
    vetter, asked = resolver("93.184.216.34")
    with pytest.raises(CallbackRefused, match=why):
        await vetter.vet(url)
    assert asked == []


async def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    vetter, _ = resolver("10.0.0.7")
    with pytest.raises(CallbackRefused, match=r"10\.0\.0\.7 is a private address"):
        await vetter.vet("https://internal.example.com/")


async def test_one_refused_address_among_public_ones_refuses_the_host() -> None:
    vetter, _ = resolver("93.184.216.34", "169.254.169.254")
    with pytest.raises(CallbackRefused, match="metadata"):
        await vetter.vet("https://mixed.example.com/")


async def test_literal_addresses_are_judged_without_dns() -> None:
    vetter, asked = resolver("93.184.216.34")
    for url in ("https://127.0.0.1/", "https://[::1]:8443/", "https://[::ffff:10.0.0.1]/"):
        with pytest.raises(CallbackRefused):
            await vetter.vet(url)
    assert (await vetter.vet("https://8.8.8.8/")).address == ipaddress.ip_address("8.8.8.8")
    assert asked == []


async def test_resolution_is_bounded_and_failures_are_refusals() -> None:
    slow, _ = resolver("93.184.216.34", delay_s=5.0)
    with pytest.raises(CallbackRefused, match=r"did not resolve within 0\.2 s"):
        async with asyncio.timeout(2):
            await slow.vet("https://slow.example.com/")
    unknown, _ = resolver()
    with pytest.raises(CallbackRefused, match="does not resolve"):
        await unknown.vet("https://nxdomain.example.com/")


async def test_the_settings_allow_private_addresses_and_http_only_when_set() -> None:
    async def loopback(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("127.0.0.1")]

    strict = CallbackVetter.of(Settings(), resolve=loopback)
    with pytest.raises(CallbackRefused):
        await strict.vet("https://localhost:9000/hook")
    relaxed = CallbackVetter.of(
        Settings(webhook_allow_private=True, webhook_allow_http=True), resolve=loopback
    )
    vetted = await relaxed.vet("http://localhost:9000/hook")
    assert (vetted.target.port, str(vetted.address)) == (9000, "127.0.0.1")
    with pytest.raises(CallbackRefused, match="metadata"):
        await relaxed.vet("http://169.254.169.254/latest/meta-data")


def test_webhook_settings_parse_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    assert defaults.webhook_allow_private is False
    assert defaults.webhook_allow_http is False
    assert defaults.webhook_max_age_s == 24 * 3600
    assert defaults.webhook_secret_overlap_s == 24 * 3600
    monkeypatch.setenv("USAGE_WEBHOOK_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("USAGE_WEBHOOK_RETRY_BASE_S", "0.1")
    monkeypatch.setenv("USAGE_WEBHOOK_MAX_AGE_S", "60")
    monkeypatch.setenv("USAGE_WEBHOOK_SECRET_OVERLAP_S", "0")
    configured = Settings()
    assert configured.webhook_allow_private is True
    assert configured.webhook_retry_base_s == 0.1
    assert configured.webhook_max_age_s == 60
    assert configured.webhook_secret_overlap_s == 0
    monkeypatch.setenv("USAGE_WEBHOOK_RETRY_BASE_S", "0")
    with pytest.raises(ValueError, match="webhook_retry_base_s"):
        Settings()


@pytest.mark.parametrize(
    "url",
    [
        "https://2130706433/",  # 127.0.0.1 in decimal
        "https://0x7f.1/",  # and in hex, short form
        "https://0177.0.0.1/",  # octal
        "https://127.1/",
        "https://[::ffff:7f00:1]/",
        "https://[0:0:0:0:0:ffff:127.0.0.1]/",
    ],
)
async def test_numeric_and_dotted_spellings_of_loopback_are_refused(url: str) -> None:
    # The system resolver (no network for these) turns every spelling into 127.0.0.1.
    vetter = CallbackVetter(allow_private=False, allow_http=False, dns_timeout_s=5)
    with pytest.raises(CallbackRefused, match="loopback"):
        await vetter.vet(url)


async def test_hung_lookups_do_not_starve_the_default_executor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A callback host whose name servers never answer keeps getaddrinfo's thread busy
    # long after the vetting's timeout. In the default executor those threads are the
    # ones the exporter's scans run in (asyncio.to_thread): a workspace could stall
    # every export with a few requests naming such a host.
    import threading

    release = threading.Event()

    def hung(*args: object, **kwargs: object) -> list[object]:
        release.wait(30)
        raise OSError("released")

    monkeypatch.setattr("socket.getaddrinfo", hung)
    vetter = CallbackVetter(allow_private=False, allow_http=False, dns_timeout_s=0.05)
    try:
        for n in range(40):
            # within the limit a lookup times out; beyond it, it is refused at once
            with pytest.raises(CallbackRefused, match=r"within|lookups are still running"):
                await vetter.vet(f"https://hung-{n}.example/")
        assert await asyncio.wait_for(asyncio.to_thread(lambda: "free"), 2) == "free"
    finally:
        release.set()
