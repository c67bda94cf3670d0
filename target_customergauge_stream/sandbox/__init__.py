"""A local stand-in for CustomerGauge's Stream API, for demos and tests.

It follows the public contract of `POST /v4.1/stream/transactional.{json,xml}`:
`Authorization: api_key <KEY>` or an OAuth2 Bearer token from
`POST /oauth2/token`, an XML body of `<records><record>...`, at most
2,000,000 bytes and 2,000 records per upload, `{"Data": true}` on success and
`{"Error": {"Message": ..., "Code": ...}}` on failure (or the same as XML). It
listens on loopback only, keeps every accepted upload (raw body and parsed
records) in a folder and in memory, and can inject faults.

Inspection endpoints, all GET, JSON unless noted: `/sandbox/uploads` (list),
`/sandbox/uploads/<n>` (records of one upload), `/sandbox/uploads/<n>/body`
(raw XML), `/sandbox/records` (every accepted record in order),
`/sandbox/summary` (counts), `/sandbox/duplicates` (values of the key field,
`Email` by default, that arrived more than once). `DELETE /sandbox/uploads`
forgets everything, files included.
"""

from __future__ import annotations

from target_customergauge_stream.sandbox.cli import main
from target_customergauge_stream.sandbox.contract import (
    API_PATH,
    TOKEN_PATH,
    parse_upload,
)
from target_customergauge_stream.sandbox.server import Sandbox, StoreNotEmptyError

__all__ = [
    "API_PATH",
    "TOKEN_PATH",
    "Sandbox",
    "StoreNotEmptyError",
    "main",
    "parse_upload",
]
