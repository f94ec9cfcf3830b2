"""Write the server's OpenAPI document: python -m ledger.server > specs/openapi.json."""

import json

from .app import openapi_document

print(json.dumps(openapi_document(), indent=2, ensure_ascii=False))
