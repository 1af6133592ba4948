"""Headless Chromium driven over the DevTools protocol through a pipe (`--remote-debugging-pipe`: commands
in on file descriptor 3, replies and events out on 4, each a JSON text ended by a NUL byte), so the
viewers' pages run in a real browser with the standard library alone. Chromium is Debian's `chromium`
(`make test-browser` installs it)."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--remote-debugging-pipe")  # fmt: skip

TRAMPOLINE = (
    "import fcntl, os, sys\n"
    "r, w = (fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3])  # clear of 3 and 4 first\n"
    "os.dup2(r, 3)\nos.dup2(w, 4)\nos.execv(sys.argv[3], sys.argv[3:])\n"
)
"""Runs Chromium with the protocol's pipe ends (given as numbers) on descriptors 3 and 4."""


def chromium_path() -> str:
    """The browser to run; an AssertionError saying how to install it (a test selected with `-m browser`
    fails without one, it never skips)."""
    found = next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)
    assert found, "the browser tests need Chromium: `make test-browser` installs Debian's chromium"
    return found


class Page:
    """One tab of a headless Chromium showing `url`; `evaluate` runs JavaScript in it, `drag` and `click`
    send real mouse events. Use as a context manager (the browser quits at its end)."""

    def __init__(self, url: str, size: tuple[int, int] = (900, 800)) -> None:
        self._profile = tempfile.mkdtemp(prefix="cips3d-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        # The protocol's fixed descriptors 3 and 4 are set in the child by a small Python trampoline (no
        # preexec_fn: the viewer's server threads run in this process; dash cannot name fds above 9).
        self._process = subprocess.Popen(
            [sys.executable, "-c", TRAMPOLINE, str(to_browser_r), str(from_browser_w), chromium_path(),
             *FLAGS, f"--user-data-dir={self._profile}", f"--window-size={size[0]},{size[1]}",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(to_browser_r, from_browser_w),
        )  # fmt: skip
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id, self._buffer, self._session = 0, b"", None
        target = self._call("Target.createTarget", url=url)["targetId"]
        self._session = self._call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self._call("Runtime.enable")

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *_: object) -> None:
        try:  # a browser told to close takes its renderer processes with it; a killed one may not at once
            self._call("Browser.close", browser_level=True, timeout=5.0)
            self._process.wait(timeout=10)
        except (AssertionError, OSError, subprocess.TimeoutExpired):
            self._process.kill()
            self._process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        shutil.rmtree(self._profile, ignore_errors=True)

    def save_downloads_to(self, folder: str | os.PathLike) -> None:
        """Let the page download files, into `folder` (headless Chromium refuses downloads otherwise)."""
        self._call("Browser.setDownloadBehavior", browser_level=True, behavior="allow",
                   downloadPath=str(folder))  # fmt: skip

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (awaited when it is a promise)."""
        reply = self._call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in reply:
            raise AssertionError(f"the page's JavaScript failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        """Poll a JavaScript expression until it is truthy (one that throws, e.g. before the page has
        loaded, counts as not yet); its value."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            try:
                if value := self.evaluate(expression):
                    return value
                last = value
            except AssertionError as err:
                last = err
            time.sleep(0.05)
        raise AssertionError(f"after {timeout} s the page still gives {last!r} for {expression!r}")

    def centre_of(self, element_id: str) -> tuple[float, float]:
        box = self.evaluate(
            f"(() => {{ const r = document.getElementById('{element_id}')"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        return box[0], box[1]  # fmt: skip

    def drag(self, element_id: str, dx: float, dy: float, steps: int = 5) -> None:
        """Press the left button on the element's centre, move by (dx, dy) in `steps`, release."""
        x, y = self.centre_of(element_id)
        self._mouse("mousePressed", x, y, buttons=1)
        for i in range(1, steps + 1):
            self._mouse("mouseMoved", x + dx * i / steps, y + dy * i / steps, buttons=1)
        self._mouse("mouseReleased", x + dx, y + dy, buttons=0)

    def click(self, element_id: str) -> None:
        x, y = self.centre_of(element_id)
        self._mouse("mousePressed", x, y, buttons=1)
        self._mouse("mouseReleased", x, y, buttons=0)

    def press(self, key: str) -> None:
        """A key pressed and released on the page (not in a text box): 'ArrowLeft', '+', ..."""
        codes = {"ArrowLeft": 37, "ArrowUp": 38, "ArrowRight": 39, "ArrowDown": 40, "+": 187, "-": 189}
        self.evaluate("document.activeElement && document.activeElement.blur()")
        for kind in ("keyDown", "keyUp"):
            self._call("Input.dispatchKeyEvent", type=kind, key=key, windowsVirtualKeyCode=codes[key],
                       **({"text": key} if len(key) == 1 and kind == "keyDown" else {}))  # fmt: skip

    def wheel(self, element_id: str, delta_y: float) -> None:
        x, y = self.centre_of(element_id)
        self._call("Input.dispatchMouseEvent", type="mouseWheel", x=x, y=y, deltaX=0, deltaY=delta_y)

    def _mouse(self, kind: str, x: float, y: float, buttons: int) -> None:
        self._call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", buttons=buttons,
                   clickCount=1)  # fmt: skip

    def _call(self, method: str, timeout: float = 30.0, browser_level: bool = False, **params: Any) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if self._session is not None and not browser_level:
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline, method)
            if reply.get("id") == self._next_id:  # events and other replies are passed over
                if "error" in reply:
                    raise AssertionError(f"Chromium refused {method}: {reply['error']}")
                return reply.get("result", {})

    def _read_message(self, deadline: float, method: str) -> dict:
        while b"\0" not in self._buffer:
            if not select.select([self._from_browser], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise AssertionError(f"Chromium did not answer {method} in time")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise AssertionError(f"Chromium quit (exit code {self._process.poll()})")
            self._buffer += chunk
        text, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(text)
