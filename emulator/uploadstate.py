"""Upload state carried in ``Location`` URLs (``?_state=``), signed with ``http.secret``.

The token records where the client believed the upload stood. A request made with an older token
than the upload's size is a stale retry and is refused with 416, as distribution refuses it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

from .errors import BlobUploadInvalid


@dataclass(frozen=True)
class UploadState:
    name: str
    upload_id: str
    offset: int
    started_at: str


def encode(state: UploadState, secret: bytes) -> str:
    payload = json.dumps(
        {"n": state.name, "u": state.upload_id, "o": state.offset, "s": state.started_at},
        separators=(",", ":"),
    ).encode()
    signature = hmac.new(secret, payload, hashlib.sha256).digest()
    return _b64(signature + payload)


def decode(token: str, secret: bytes) -> UploadState:
    """Verify and unpack a token; a forged or mangled one is ``BLOB_UPLOAD_INVALID``."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        signature, payload = raw[:32], raw[32:]
        if not hmac.compare_digest(signature, hmac.new(secret, payload, hashlib.sha256).digest()):
            raise ValueError("bad signature")
        fields = json.loads(payload)
        return UploadState(str(fields["n"]), str(fields["u"]), int(fields["o"]), str(fields["s"]))
    except (ValueError, KeyError, TypeError):
        raise BlobUploadInvalid({"reason": "invalid upload state"}) from None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
