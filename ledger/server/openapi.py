"""The OpenAPI description of the log server: response documents and extras.

FastAPI derives most of the document from the routes in ``ledger.server.app``.
This module adds what it cannot derive: the hand-written operation of
``POST /v1/entries`` (served ahead of FastAPI's routing, see
``ledger.server.append``), the bearer scheme of the write token, and the
pydantic models that describe the JSON responses. specs/openapi.json is the
document written out by ``python -m ledger.server``.
"""

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

__all__ = [
    "APPEND_OPERATION",
    "CHECKPOINT_EXAMPLE",
    "AppendResponse",
    "ConsistencyProofResponse",
    "EntriesResponse",
    "ErrorResponse",
    "HealthResponse",
    "InclusionProofResponse",
    "error_responses",
    "install_openapi",
    "octets_response",
    "text_response",
]



class AppendResponse(BaseModel):
    """The receipt of an appended entry."""

    index: int
    leaf_hash: str
    receipt: str


class InclusionProofResponse(BaseModel):
    """An RFC 9162 audit path, as standard base64 hashes from the leaf up."""

    index: int
    size: int
    proof: list[str]


class ConsistencyProofResponse(BaseModel):
    """An RFC 9162 consistency proof, as standard base64 hashes."""

    first: int
    second: int
    proof: list[str]


class EntriesResponse(BaseModel):
    """The entries of leaves ``[start, end)``, as standard base64."""

    start: int
    end: int
    entries: list[str]


class HealthResponse(BaseModel):
    """Health of the server: the log's origin and its stored size."""

    status: str
    origin: str
    size: int


class ErrorResponse(BaseModel):
    """Every error: a short code and a sentence naming the value and the fix."""

    error: str
    detail: str


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorResponse} for status in statuses}


def text_response(description: str, example: str) -> dict[str, Any]:
    return {"content": {"text/plain": {"example": example}}, "description": description}


def octets_response(description: str) -> dict[str, Any]:
    schema = {"type": "string", "format": "binary"}
    return {
        "content": {"application/octet-stream": {"schema": schema}},
        "description": description,
    }


APPEND_STATUSES = (400, 401, 409, 413, 415, 503)
APPEND_OPERATION = {
    "tags": ["write"],
    "summary": "Append Entry",
    "description": "Append one entry and return its receipt (a tlog-proof@v1 file).",
    "operationId": "append_entry",
    "security": [{"writeToken": []}],
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "Opaque key of 1 to 256 printable characters; a retry "
            "with the same key and entry returns the first receipt.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 256},
        }
    ],
    "requestBody": {
        "required": True,
        "description": "The entry: the RFC 8785 (JCS) bytes of one JSON object.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    "responses": {
        "200": {
            "description": "The entry's receipt.",
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/AppendResponse"}
                }
            },
        },
        **{
            str(status): {
                "description": HTTPStatus(status).phrase,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/ErrorResponse"}
                    }
                },
            }
            for status in APPEND_STATUSES
        },
    },
}
CHECKPOINT_EXAMPLE = (
    "agentgate.example/demo\n7\n1DjhqOt/4jKGUb5P27v7lwFzWi98g3k6f5kozeI897g=\n\n"
    "\u2014 agentgate.example/demo mAbM/0Plxt...\n"
)


def install_openapi(app: FastAPI) -> None:
    """Complete FastAPI's document with the append operation and the bearer scheme.

    Invalid parameters get 400 here, so FastAPI's default 422 is removed.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            for operations in document["paths"].values():
                for operation in operations.values():
                    operation["responses"].pop("422", None)
            entries = document["paths"]["/v1/entries"]
            document["paths"]["/v1/entries"] = {"post": APPEND_OPERATION, **entries}
            components = document.setdefault("components", {})
            schemas = components.setdefault("schemas", {})
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
            schemas["AppendResponse"] = AppendResponse.model_json_schema()
            schemas = dict(sorted(schemas.items()))
            components["schemas"] = schemas
            components["securitySchemes"] = {
                "writeToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The server's write token; only appends need it.",
                }
            }
        return app.openapi_schema

    app.openapi = openapi


