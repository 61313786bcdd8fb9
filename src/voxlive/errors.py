"""The exception tree. Every error a client can cause maps to a stable code and maybe a close code.

Messages are factual and quantitative ("expected X, got Y"); they never carry paths or tracebacks,
because :class:`ClientError` messages are sent to clients verbatim.
"""

from __future__ import annotations


class VoxliveError(Exception):
    """Base class of every error voxlive raises on purpose."""


class ConfigError(VoxliveError):
    """A setting has a bad value. The message names the key and the value."""


class ModelLoadError(VoxliveError):
    """A model could not be loaded. The message says why and what to do."""


class ClientError(VoxliveError):
    """Something a client sent is wrong.

    ``code`` is a stable machine-readable string (documented in docs/protocol.md).
    ``close_code`` is the WebSocket close code when the stream cannot go on, else ``None``
    (the client gets an ``error`` message and the stream continues).
    """

    code = "bad_request"
    close_code: int | None = None

    def __init__(self, message: str, *, code: str | None = None, close_code: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if close_code is not None:
            self.close_code = close_code


class FrameError(ClientError):
    """A binary frame could not be decoded as audio. The stream goes on."""

    code = "bad_frame"


class MessageError(ClientError):
    """A text message is not JSON, has the wrong shape, or an unknown type. The stream goes on."""

    code = "bad_message"


class StateError(ClientError):
    """A message arrived that the protocol's message order does not allow."""

    code = "unexpected_message"


class FormatError(ClientError):
    """The declared audio format is unsupported; the stream cannot go on (close 1003)."""

    code = "unsupported_format"
    close_code = 1003


class FrameTooLarge(ClientError):
    """A frame exceeds the size limit (close 1009)."""

    code = "frame_too_large"
    close_code = 1009


class AuthError(ClientError):
    """The stream did not present the server's token, or its origin is not allowed (close 1008)."""

    code = "unauthorized"
    close_code = 1008


class StreamTimeout(ClientError):
    """The stream was idle too long (``idle_timeout``) or reached its maximum duration
    (``max_duration``): it is flushed and closed with 1001."""

    code = "idle_timeout"
    close_code = 1001
