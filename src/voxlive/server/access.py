"""Who may use the server: the shared token and the WebSocket origin allowlist."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit

_LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")


LOOPBACK_BINDS = ("127.0.0.1", "localhost", "::1")


def trusted_hosts(allowed: tuple[str, ...], bind_host: str) -> list[str]:
    """The Host header values to answer. A server on loopback answers only to localhost names:
    a web page whose DNS name was rebound to 127.0.0.1 sends its own name and is refused, so
    it cannot pass the same-origin check with a matching Origin. Elsewhere the public names are
    not known: any Host, unless ``allowed`` lists them."""
    if allowed:
        return list(allowed)
    if bind_host in LOOPBACK_BINDS or bind_host.startswith("127."):
        return ["localhost", "*.localhost", "127.0.0.1", "::1", bind_host]
    return ["*"]


def token_ok(expected: str, given: str | None) -> bool:
    """True when no token is configured, or ``given`` matches it (constant-time compare)."""
    if not expected:
        return True
    return given is not None and secrets.compare_digest(given.encode(), expected.encode())


def bearer(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if any."""
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def origin_ok(origin: str | None, host: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether a WebSocket upgrade from ``origin`` may proceed.

    No Origin header (not a browser): allowed. With an allowlist: exact matches (or ``*``).
    Without one: the same host as the request's Host header, or a localhost origin. Behind a
    reverse proxy, pass the public Host through (nginx: ``proxy_set_header Host $host``) or list
    the public origin.
    """
    if not origin:
        return True
    if allowed:
        return "*" in allowed or origin.rstrip("/") in {a.rstrip("/") for a in allowed}
    parts = urlsplit(origin)
    if parts.hostname in _LOCAL_HOSTS or (parts.hostname and parts.hostname.endswith(".localhost")):
        return True
    return bool(host) and parts.netloc.lower() == (host or "").lower()
