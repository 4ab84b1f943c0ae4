"""Errors of the channel adapters; `ChannelError` is the package root."""

from __future__ import annotations


class ChannelError(Exception):
    """Root of every error a channel adapter raises."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        """The human-readable reason."""
        return str(self.args[0]) if self.args else self.code


class BadInput(ChannelError):
    """The payload is malformed or misses a required field (400)."""


class BadSignature(ChannelError):
    """A signature or credential check failed (403)."""

    status = 403
    code = "bad_signature"


class ChannelDisabled(ChannelError):
    """The channel is not configured on this server (503)."""

    status = 503
    code = "channel_disabled"
