"""Webhook signature checks, computed exactly as the senders compute them."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Iterator, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

TWILIO_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
"""Twilio's newer header naming the signing key and algorithm (`key=...,algorithm=HMAC_SHA256`)."""
_HASHES = {"HMAC_SHA1": hashlib.sha1, "HMAC_SHA256": hashlib.sha256}


def twilio_algorithm(settings_header: str | None) -> str:
    """The algorithm a Twilio request was signed with (HMAC_SHA1 without the settings header)."""
    for part in (settings_header or "").split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip() == "algorithm" and value.strip():
            return value.strip().upper()
    return "HMAC_SHA1"


def twilio_signature(secret: str, url: str, params: Mapping[str, Sequence[str]], algorithm: str) -> str:
    """Base64 HMAC over the URL plus every form key and value, keys (and values) sorted."""
    text = url + "".join(name + value for name in sorted(params) for value in sorted(set(params[name])))
    digest = hmac.new(secret.encode(), text.encode(), _HASHES[algorithm]).digest()
    return base64.b64encode(digest).decode()


def url_variants(url: str) -> list[str]:
    """The URL as given, without and with its default port (Twilio signs either)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.username or parts.password:
        return [url]
    default = 443 if parts.scheme == "https" else 80
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    ported = urlunsplit(
        (parts.scheme, f"{host}:{parts.port or default}", parts.path, parts.query, parts.fragment)
    )
    return list(dict.fromkeys([url, bare, ported]))


def twilio_valid(
    secret: str, urls: Iterable[str], params: Mapping[str, Sequence[str]], signature: str, algorithm: str
) -> bool:
    """Whether `signature` is Twilio's signature of the request for any of the URLs."""
    if algorithm not in _HASHES or not signature:
        return False
    given = signature.encode("utf-8", "surrogatepass")  # a forged header may hold any text
    return any(
        hmac.compare_digest(twilio_signature(secret, url, params, algorithm).encode(), given)
        for url in _candidates(list(urls))
    )


def _candidates(urls: list[str]) -> Iterator[str]:
    """The URLs as given, then their port variants: the usual match costs one HMAC, no parsing."""
    yield from urls
    for url in urls:
        yield from (variant for variant in url_variants(url) if variant not in urls)
