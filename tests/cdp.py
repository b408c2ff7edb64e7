"""Headless Chromium driven over the DevTools protocol through a pipe (--remote-debugging-pipe):
no WebSocket and no extra package. Commands go to the browser's fd 3, answers and events come
from its fd 4, each a JSON message ended by a NUL byte.

    with Browser(binary, profile) as browser:
        browser.go("http://127.0.0.1:8080/")
        browser.evaluate("document.title")
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

TIMEOUT = 30.0


class Browser:
    """One headless Chromium with one page; every host but 127.0.0.1 resolves to nothing."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_browser, self._commands = os.pipe()
        self._answers, from_browser = os.pipe()
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", f"--user-data-dir={profile}",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--remote-debugging-pipe", "about:blank"]
        # The shell puts the pipe ends where Chromium looks for them: fds 3 and 4.
        self.process = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{to_browser} 4>&{from_browser} '
                           f'{to_browser}<&- {from_browser}>&-', binary, *args],
            pass_fds=(to_browser, from_browser), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        self._next = 0
        self._replies: dict[int, dict] = {}
        self.events: queue.Queue[dict] = queue.Queue()
        self._lock = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime"):
            self.call(f"{domain}.enable", session=self.session)

    def _read(self) -> None:
        buffer = b""
        with os.fdopen(self._answers, "rb", buffering=0) as answers:
            while chunk := answers.read(65536):
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        with self._lock:
                            self._replies[message["id"]] = message
                            self._lock.notify_all()
                    else:
                        self.events.put(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send a command; its result (raises on a protocol error)."""
        self._next += 1
        number = self._next
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode("utf-8") + b"\0")
        with self._lock:
            if not self._lock.wait_for(lambda: number in self._replies, TIMEOUT):
                raise TimeoutError(f"no answer to {method} within {TIMEOUT} s")
            reply = self._replies.pop(number)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def page(self, method: str, params: dict | None = None) -> dict:
        return self.call(method, params, self.session)

    def wait_for(self, method: str) -> dict:
        """The next event `method` of the page (earlier events of other kinds are dropped)."""
        deadline = time.monotonic() + TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            try:
                found = self.events.get(timeout=left)
            except queue.Empty:
                break
            if found["method"] == method:
                return found["params"]
        raise TimeoutError(f"no {method} within {TIMEOUT} s")

    def go(self, url: str) -> None:
        """Open `url` and wait until it has loaded."""
        self.drain()
        self.page("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.page("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def drain(self) -> list[dict]:
        """The events received so far, forgotten."""
        drained = []
        while not self.events.empty():
            drained.append(self.events.get_nowait())
        return drained

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *_exc: object) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.call("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        self._reader.join(timeout=5)
