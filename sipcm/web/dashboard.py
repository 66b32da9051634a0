"""The dashboard and call pages: self-contained HTML documents built from `static/`.

`static/NAME.html` holds the markup with two markers that are replaced by the inline
stylesheet and script (`NAME.css`, `NAME.js`), so a page needs no external asset. The
Content-Security-Policy allows exactly those two inline blocks (by SHA-256 hash) and API
calls to this origin. A page carries no data: its script fetches everything from the API
with the access token.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

STYLE_MARK = "/*@STYLE@*/"
SCRIPT_MARK = "/*@SCRIPT@*/"


@dataclass(frozen=True, slots=True)
class Page:
    """The assembled page and the security policy that admits its inline blocks."""

    html: bytes
    csp: str


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def page() -> Page:
    """The dashboard page."""
    return assemble("dashboard")


def call_page() -> Page:
    """The call page (ladder, raw messages, events of the call named by `?id=`)."""
    return assemble("call")


@lru_cache(maxsize=4)
def assemble(name: str) -> Page:
    """Build page `name` once from the packaged static files."""
    static = resources.files("sipcm.web") / "static"
    html = (static / f"{name}.html").read_text("utf-8")
    css = (static / f"{name}.css").read_text("utf-8")
    js = (static / f"{name}.js").read_text("utf-8")
    if html.count(STYLE_MARK) != 1 or html.count(SCRIPT_MARK) != 1:
        raise RuntimeError(f"{name}.html must contain each inline marker exactly once")
    html = html.replace(STYLE_MARK, css).replace(SCRIPT_MARK, js)
    csp = "; ".join(
        (
            "default-src 'none'",
            f"style-src {_sha256(css)}",
            f"script-src {_sha256(js)}",
            "connect-src 'self'",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )
    return Page(html.encode(), csp)
