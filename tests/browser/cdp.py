"""Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe):
load a page at a given window size, evaluate expressions in it, click, reload, wait for a
condition. No extra package: the protocol is JSON messages separated by NUL bytes on file
descriptors 3 (to the browser) and 4 (from it)."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium")


class CdpError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with one page (a fresh profile under `tmp_path`)."""

    def __init__(self, tmp_path: Path, width: int = 1280, height: int = 900, tz: str = "UTC"):
        profile = tmp_path / f"cdp-profile-{time.monotonic_ns()}"
        to_r, self._to_w = os.pipe()
        self._from_r, from_w = os.pipe()

        def fds() -> None:  # the browser reads commands on fd 3, answers on fd 4
            r, w = os.dup(to_r), os.dup(from_w)  # first out of the way of 3 and 4
            os.dup2(r, 3)
            os.dup2(w, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM or "chromium", "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-extensions",
             "--hide-scrollbars", "--remote-debugging-pipe", f"--user-data-dir={profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=fds, close_fds=False, env={**os.environ, "TZ": tz},
        )  # fmt: skip
        os.close(to_r)
        os.close(from_w)
        self._buf = b""
        self._id = 0
        target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = self._send("Target.attachToTarget", {"targetId": target, "flatten": True})
        self._session = attached["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.resize(width, height)

    # -- protocol --------------------------------------------------------------------------

    def _send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + 30
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    if "error" in reply:
                        raise CdpError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
            left = deadline - time.monotonic()
            if left <= 0:
                raise CdpError(f"{method}: no answer")
            ready, _, _ = select.select([self._from_r], [], [], left)
            if ready:
                chunk = os.read(self._from_r, 1 << 16)
                if not chunk:
                    raise CdpError("the browser closed the pipe")
                self._buf += chunk

    def send(self, method: str, params: dict | None = None) -> dict:
        """A command to the page's session."""
        return self._send(method, params, self._session)

    # -- page --------------------------------------------------------------------------------

    def resize(self, width: int, height: int) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def goto(self, url: str) -> None:
        self.send("Page.navigate", {"url": url})

    def reload(self) -> None:
        self.send("Page.reload", {"ignoreCache": True})

    def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-able)."""
        res = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in res:
            raise CdpError(f"{expression}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def wait(self, expression: str, timeout: float = 20.0) -> Any:
        """Wait until `expression` is truthy in the page; its value."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.eval(expression)
            except CdpError:
                last = None  # the page is (re)loading
            if last:
                return last
            time.sleep(0.1)
        raise CdpError(f"timed out waiting for {expression} (last value {last!r})")

    def text(self, element_id: str) -> str:
        return self.eval(f"document.getElementById({json.dumps(element_id)}).textContent")

    def rows(self, table_id: str) -> list[list[str]]:
        """The text of the visible cells of a table's body rows."""
        return self.eval(
            f"[...document.getElementById({json.dumps(table_id)}).tBodies[0].rows].map((r) =>"
            " [...r.cells].filter((c) => getComputedStyle(c).display !== 'none')"
            ".map((c) => c.textContent))"
        )

    def close(self) -> None:
        try:
            self._send("Browser.close")
        except (CdpError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_w)
        os.close(self._from_r)
