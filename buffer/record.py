"""The commit record's bytes: JSON that ends with a CRC-32 of itself, so a flipped byte that
still parses (a digit of a row count) is caught, not trusted."""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

_TRAILER = re.compile(rb', "record_crc": "([0-9a-f]{8})"\}\s*$')


def sealed_record(record: dict[str, Any]) -> bytes:
    """`record` as JSON with its CRC as the last field."""
    body = json.dumps(record).encode()
    return body[:-1] + b', "record_crc": "%08x"}' % zlib.crc32(body)


def open_record(data: bytes) -> dict[str, Any]:
    """The record in `data`; ValueError if its CRC does not match (records written before the
    CRC existed carry none and are taken as they parse)."""
    match = _TRAILER.search(data)
    if match is None:
        if b'"record_crc"' in data:
            raise ValueError("the record's CRC field is damaged")
        record = json.loads(data)
    else:
        body = data[: match.start()] + b"}"
        if zlib.crc32(body) != int(match.group(1), 16):
            raise ValueError("checksum mismatch: the record was damaged after it was written")
        record = json.loads(body)
    if not isinstance(record, dict):
        raise ValueError("the record is not a JSON object")
    return record
