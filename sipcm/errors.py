"""User-facing errors: one line naming the problem and the fix, non-zero exit, no traceback."""

from __future__ import annotations

import re

# scheme://user:password@host -> the password (RFC 3986 userinfo; '@' inside it is %40).
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/?#@\s:]*):[^/?#\s]*@")


def redact_url_passwords(text: str) -> str:
    """`text` with the password of every URL in it (scheme://user:password@host) as ***, for
    anything shown or logged (configuration dumps, error messages)."""
    return _URL_PASSWORD.sub(r"\1:***@", text)


def strip_url_passwords(text: str) -> str:
    """`text` with the password of every URL in it removed (scheme://user@host), for output
    that must load back without it rather than with "***" as the password."""
    return _URL_PASSWORD.sub(r"\1@", text)


class SipcmError(Exception):
    """An error the user can act on. `hint` says how to fix it; `exit_code` is the CLI status."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class CaptureFileError(SipcmError):
    """A capture file is missing, unreadable or not pcap/pcapng."""


class ConfigError(SipcmError):
    """A configuration file, key or value is invalid."""


class CaptureError(SipcmError):
    """Live capture cannot start: not root, BPF or headers missing, interface not found."""


class WorkerError(SipcmError):
    """A correlation worker process died or failed; the sensor stops rather than run on
    with a shard of its state missing."""

    exit_code = 3
