"""A small synchronous client of the node API (the CLI uses it; so can scripts).

Standard library only (urllib), so the CLI starts fast and needs nothing the node does not.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any


class ApiCallError(Exception):
    """The API answered with an error (``status``, ``code``) or could not be reached
    (``status`` 0)."""

    def __init__(self, status: int, code: str, message: str, hint: str = "") -> None:
        super().__init__(f"{code}: {message}" if status else message)
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint


class NodeClient:
    def __init__(
        self, url: str, token: str, timeout: float = 30.0, cafile: str | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        #: An ``https`` API is trusted through exactly this certificate (the node's
        #: self-signed ``api.cert``): pinned, not the system's authorities.
        self.context: ssl.SSLContext | None = None
        if cafile is not None:
            self.context = ssl.create_default_context(cafile=cafile)
            self.context.minimum_version = ssl.TLSVersion.TLSv1_2

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(
                request, timeout=self.timeout, context=self.context
            ) as response:
                raw = response.read()
                kind = response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                error = json.loads(raw)["error"]
                code, message = str(error["code"]), str(error["message"])
                hint = str(error.get("hint") or "")
            except (ValueError, KeyError, TypeError, AttributeError):
                raise ApiCallError(exc.code, "http_error", raw.decode(errors="replace")) from None
            raise ApiCallError(exc.code, code, message, hint) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiCallError(0, "unreachable", f"node API at {self.url}: {reason}") from None
        if "json" in kind:
            return json.loads(raw)
        return raw.decode()

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, body or {})
