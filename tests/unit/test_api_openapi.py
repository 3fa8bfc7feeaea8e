"""The OpenAPI document describes exactly what the API serves, with the reference's shapes."""

from __future__ import annotations

from typing import Any

import pytest

from services.api.handlers import ExportApi
from services.api.openapi import openapi_document
from services.api.routes import STATUS_PATH
from shared.contracts.export_types import EXPORT_SPECS
from shared.settings import Settings


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document()


def served_routes(settings: Settings) -> set[tuple[str, str]]:
    api = ExportApi(
        settings,
        verifier=None,  # type: ignore[arg-type]  # building the router uses none of them
        limiter=None,  # type: ignore[arg-type]
        waiter=None,  # type: ignore[arg-type]
        producer=None,
        exports=None,  # type: ignore[arg-type]
    )
    routes = api.application().router.routes()
    return {(route.method, route.resource.canonical) for route in routes if route.resource}


def test_every_served_route_is_documented_under_both_servers(document: dict[str, Any]) -> None:
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    prefix = document["servers"][1]["url"]
    assert prefix == "/api/public"
    expected = documented | {(method, f"{prefix}{path}") for method, path in documented}
    assert served_routes(Settings()) == expected
    assert served_routes(Settings(api_path_prefix="")) == documented
    assert ("POST", "/export/api-keys/json") in documented
    assert ("GET", STATUS_PATH) in documented


def test_bodies_and_responses_follow_the_reference(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["ExportResponse"]["required"] == ["success", "data"]
    reference = {"filePath", "downloadUrl", "dataType", "recordCount", "dateRange"}
    ours = {"format", "ingestedThrough"}  # added
    assert set(schemas["ExportData"]["required"]) == reference | ours
    assert schemas["ErrorResponse"]["required"] == ["error", "message"]
    bound = schemas["BoundBody"]
    assert set(bound["required"]) == {"date", "timezone"}
    operation = document["paths"]["/export/models"]["post"]
    assert {"200", "202", "400", "401", "403", "404", "429"} <= set(operation["responses"])
    assert operation["responses"]["429"]["headers"]["Retry-After"]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_group_by_choices_are_the_contracts_per_type(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for data_type, spec in EXPORT_SPECS.items():
        name = "".join(part.title() for part in data_type.value.split("_")) + "ExportRequest"
        assert schemas[name]["properties"]["group_by"]["enum"] == [*sorted(spec.group_by), None]
