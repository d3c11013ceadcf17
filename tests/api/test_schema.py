"""The OpenAPI document and its Swagger UI: valid, warning-free, served from local assets
only (portals run on closed networks), and only to logged-in users."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest
from django.core.management import call_command
from django.test import Client
from drf_spectacular.drainage import GENERATOR_STATS


@pytest.fixture
def browser(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


def test_schema_is_a_valid_openapi_3_document(browser):
    response = browser.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    document = json.loads(response.content)
    assert document["openapi"].startswith("3.")
    if importlib.util.find_spec("openapi_spec_validator") is not None:
        from openapi_spec_validator import validate

        validate(document)
    else:
        from drf_spectacular.validation import validate_schema

        validate_schema(document)  # jsonschema against the OpenAPI 3 meta-schema
    paths = document["paths"]
    assert "/api/hosts/{id}/setup-networks/" in paths
    setup = paths["/api/hosts/{id}/setup-networks/"]["post"]
    assert set(setup["responses"]) == {"200", "202", "400"}
    assert "post" not in paths["/api/attachments/"]  # read-only routes offer no writes
    assert "post" in paths["/api/networks/"]


def test_schema_command_validates_without_warnings(tmp_path):
    GENERATOR_STATS.reset()
    out = tmp_path / "schema.yaml"
    # --fail-on-warn exits non-zero (SystemExit) on any warning or error.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert out.read_text().startswith("openapi: 3.")
    assert not GENERATOR_STATS


def test_docs_render_from_local_assets_only(browser):
    response = browser.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page
    assert not re.search(r"https?://", page), "the docs page must not load from a CDN"
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
    static = [a for a in assets if a.startswith("/static/")]
    assert any(a.endswith(".js") for a in static) and any(a.endswith(".css") for a in static)
    for asset in static:
        assert browser.get(asset).status_code == 200, asset


@pytest.mark.parametrize("url", ["/api/schema/", "/api/docs/"])
def test_anonymous_cannot_read_the_schema_or_docs(db, url):
    response = Client().get(url)
    assert response.status_code in (401, 403)
    assert b"openapi" not in response.content
