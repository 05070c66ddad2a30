"""The web dashboard: a small local HTTP server with Server-Sent Events and a self-contained page.

``GET /`` is ``dashboard.html`` (inline CSS and JavaScript; charts drawn as SVG by the page; nothing
fetched from anywhere else). ``GET /events`` streams :meth:`MonitorState.snapshot` as JSON events,
to any number of tabs at once: each tab gets its own stream of the same state. ``GET /api/state``
is one snapshot; ``POST /api/pause|resume|reset`` are the page's buttons; ``GET /files/<name>``
downloads a session file (``session.zip`` all of them). The server only reads the monitor: closing
every page leaves the monitor recording.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import LinkError
from .session import SESSION_FILES

log = logging.getLogger("tinyedge.monitor")

#: How often a tab gets a snapshot at most, and at least (freshness keeps changing while nothing else does).
MIN_INTERVAL = 0.2
MAX_INTERVAL = 0.5


def dashboard_html() -> bytes:
    """The page, as shipped inside the package."""
    return resources.files("tinyedge.monitor").joinpath("dashboard.html").read_bytes()


class DashboardServer:
    """Serve the dashboard of ``monitor`` on ``host:port`` (port 0: a free one) in background threads.

    >>> with DashboardServer(monitor) as web:
    ...     print(web.url)
    """

    def __init__(self, monitor: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.monitor = monitor
        self.closing = threading.Event()
        handler = type("Handler", (_Handler,), {"dashboard": self})
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise LinkError(f"cannot serve the dashboard on {host}:{port}: {exc.strerror}",
                            "pick another --http-port, or leave it out for a free one") from None
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}/"

    def start(self) -> DashboardServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="tinyedge-dashboard", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (open event streams end within a second)."""
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    dashboard: DashboardServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet: the terminal shows the dashboard
        log.debug("http: " + fmt, *args)

    def _send(self, code: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: Any, code: int = 200) -> None:
        self._send(code, json.dumps(obj).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        monitor = self.dashboard.monitor
        if path in ("/", "/index.html"):
            self._send(200, dashboard_html(), "text/html; charset=utf-8")
        elif path == "/events":
            self._events()
        elif path == "/api/state":
            self._json(monitor.state.snapshot())
        elif path.startswith("/files/"):
            self._file(path[len("/files/"):])
        else:
            self._send(404, b"not found\n", "text/plain")

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802
        monitor = self.dashboard.monitor
        actions = {"/api/pause": monitor.pause, "/api/resume": monitor.resume, "/api/reset": monitor.reset}
        action = actions.get(self.path.split("?", 1)[0])
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if action is None:
            self._send(404, b"not found\n", "text/plain")
            return
        action()
        self._json({"ok": True, "paused": monitor.state.paused})

    def _file(self, name: str) -> None:
        folder = Path(self.dashboard.monitor.record_dir)
        if name == "session.zip":
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for n in SESSION_FILES:
                    if (folder / n).is_file():
                        zf.write(folder / n, f"{folder.name}/{n}")
            body, ctype = buf.getvalue(), "application/zip"
        elif name in SESSION_FILES and (folder / name).is_file():
            body = (folder / name).read_bytes()
            ctype = "application/json" if name.endswith(".json") else "text/plain; charset=utf-8"
        else:
            self._send(404, b"no such session file\n", "text/plain")
            return
        self._send(200, body, ctype, {"Content-Disposition": f'attachment; filename="{name}"'})

    def _events(self) -> None:
        state = self.dashboard.monitor.state
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        version = -1
        try:
            while not self.dashboard.closing.is_set():
                snap = state.snapshot()
                version = snap["version"]
                self.wfile.write(b"data: " + json.dumps(snap).encode() + b"\n\n")
                self.wfile.flush()
                if self.dashboard.closing.wait(MIN_INTERVAL):
                    break
                state.wait_change(version, MAX_INTERVAL - MIN_INTERVAL)
        except (BrokenPipeError, ConnectionResetError, OSError):
            return  # the tab was closed: the monitor goes on
