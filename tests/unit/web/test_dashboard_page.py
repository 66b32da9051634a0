"""The dashboard page as served: self-contained, and its CSP admits exactly its inline blocks."""

from __future__ import annotations

import base64
import hashlib
import re

from tests.unit.web.client import Client


def _sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_page_is_self_contained_with_matching_csp(client: Client) -> None:
    r = client.get("/")
    assert r.status == 200
    html = r.body.decode()
    assert "@STYLE@" not in html
    assert "@SCRIPT@" not in html
    styles = re.findall(r"<style>(.*?)</style>", html, re.S)
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(styles) == 1
    assert len(scripts) == 1
    # No external asset of any kind: no src/href to another place, no @import, no url().
    assert not re.search(r"<script[^>]*\bsrc=", html)
    assert re.findall(r"\bhref=\"([^\"]*)\"", html) == ["data:,"]
    assert "@import" not in styles[0]
    assert "url(" not in styles[0]
    assert "http://" not in html
    assert "https://" not in html
    csp = dict(
        part.strip().split(" ", 1) for part in r.headers["content-security-policy"].split(";")
    )
    assert csp == {
        "default-src": "'none'",
        "style-src": _sha(styles[0]),
        "script-src": _sha(scripts[0]),
        "connect-src": "'self'",
        "img-src": "data:",
        "base-uri": "'none'",
        "form-action": "'none'",
        "frame-ancestors": "'none'",
    }
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"


def test_script_inserts_api_values_as_text_only(client: Client) -> None:
    js = re.search(r"<script>(.*?)</script>", client.get("/").body.decode(), re.S).group(1)
    # SIP header values are attacker-controlled: the script must never parse them as HTML.
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in js
    for path in ("/api/counters", "/api/events", "/api/calls", "/api/registrations"):
        assert path in js


def test_dashboard_rejects_unknown_parameters(client: Client) -> None:
    r = client.get("/?x=1")
    assert (r.status, r.json()) == (400, {"error": "unknown query parameter 'x' (expected: none)"})
    assert client.get("/?token=abc").status == 200
