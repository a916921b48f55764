"""The OpenAPI document describes every route the app serves, from the structs it validates with, and
its examples validate against them; /docs renders it."""

from __future__ import annotations

import msgspec

from tests.helpers import served
from web import openapi


def test_every_route_and_method_is_described(client):
    document = client.simulate_get("/openapi.json").json
    assert document["openapi"] == "3.1.0"
    described = {(path, method) for path, operations in document["paths"].items() for method in operations}
    # the description itself, and the HTML pages
    pages = {("/openapi.json", "get"), ("/docs", "get"), ("/app", "get"), ("/app/reset", "get"), ("/app/invite", "get")}
    assert served(client.app) - pages <= described
    assert ("/v1/companies/{company_id}/analytics/overview", "get") in described
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def test_request_bodies_come_from_the_validating_structs_and_their_examples_validate(client):
    document = client.simulate_get("/openapi.json").json
    company = document["paths"]["/v1/companies"]["post"]["requestBody"]["content"]["application/json"]
    assert document["components"]["schemas"]["CompanyCreate"]["properties"]["name"]["maxLength"] == 200
    assert company["example"] == {"name": "Acme"}
    with_bodies = [op for ops in document["paths"].values() for op in ops.values() if "requestBody" in op]
    assert all("example" in op["requestBody"]["content"]["application/json"] for op in with_bodies)
    for body_type, example in openapi.EXAMPLES.items():
        msgspec.json.decode(msgspec.json.encode(example), type=body_type)  # raises if the example is wrong
    answer = client.simulate_post("/v1/auth/login", json=openapi.EXAMPLES[openapi.schemas.Credentials])
    assert answer.status_code == 401  # a well-formed body, refused only for the unknown user


def test_docs_page_renders_the_document_without_fetching_anything_else(client):
    page = client.simulate_get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in page.text and "http://" not in page.text and "https://" not in page.text
