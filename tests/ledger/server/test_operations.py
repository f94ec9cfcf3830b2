"""/healthz, /metrics, and the checked-in OpenAPI document."""

import json
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from ledger.server import openapi_document

from .conftest import ORIGIN, TOKEN, auth, record

OPENAPI_FILE = Path(__file__).resolve().parents[3] / "specs" / "openapi.json"
REGENERATE = ".venv/bin/python -m ledger.server > specs/openapi.json"


def samples(text, name):
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def test_healthz(http):
    response = http.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "origin": ORIGIN, "size": 1}


def test_healthz_when_log_closed(http, server):
    server.service.stop()
    response = http.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {
        "error": "unavailable",
        "detail": "the log is not open; retry shortly",
    }


def test_metrics_count_requests_by_route_and_status(http):
    http.post("/v1/entries", content=record(1), headers=auth())
    http.post("/v1/entries", content=record(2), headers=auth(TOKEN + "x"))
    http.get("/tile/0/000.p/2")
    http.get("/no/such/path")

    response = http.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    requests = samples(response.text, "agentgate_http_requests_total")
    route = (("method", "POST"), ("route", "/v1/entries"))
    assert requests[route + (("status", "200"),)] == 1
    assert requests[route + (("status", "401"),)] == 1
    tile = (("method", "GET"), ("route", "/tile/{level}/{index_path:path}"),
            ("status", "200"))
    assert requests[tile] == 1
    assert requests[(("method", "GET"), ("route", "unmatched"),
                     ("status", "404"))] == 1
    assert samples(response.text, "agentgate_ledger_tree_size") == {(): 2}
    assert samples(response.text, "agentgate_ledger_appends_total") == {(): 1}
    latency = samples(response.text, "agentgate_ledger_append_seconds_count")
    assert latency == {(): 1}


def test_openapi_document_is_checked_in():
    generated = json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"
    assert OPENAPI_FILE.read_text(encoding="utf-8") == generated, (
        f"{OPENAPI_FILE} differs from the app's OpenAPI document; regenerate it "
        f"from the repository root with: {REGENERATE}"
    )


def test_openapi_document_is_served(http):
    assert http.get("/v1/openapi.json").json() == openapi_document()


def test_openapi_documents_errors_as_400():
    document = openapi_document()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], f"{method} {path}"
    assert "HTTPValidationError" not in document["components"]["schemas"]
