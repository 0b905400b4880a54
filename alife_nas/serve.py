"""``alife-nas serve``: the report page of one run, or of a folder of runs, live in a browser.

Standard library only (:class:`http.server.ThreadingHTTPServer`). Read-only: every request opens
the runs with ``RunStore.open(..., readonly=True)`` and nothing is ever written; only GET and
HEAD are answered (405 for anything else). Bound to 127.0.0.1 unless told otherwise; even there
another user of the machine could reach the port, so every request must carry the random token
printed with the URL (``?token=``, or the cookie the first page load sets), and the Host header
must name this server (127.0.0.1, localhost or the bound host, with its port), which stops a web
page elsewhere from reaching it through DNS rebinding.

Routes: ``/`` the live page (:func:`alife_nas.report.report_page`, polling every 2 s);
``/api/runs`` the runs with their totals; ``/api/run/NAME?since=STEP&after=ORDER`` one run's
:func:`~alife_nas.report.report_data`, with only the steps after ``since`` and the trainings
after ``order`` (what the page does not have yet).
"""
from __future__ import annotations

import ipaddress
import json
import secrets
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from alife_nas.report import report_data, report_page
from alife_nas.store import DB_NAME, RunStore, RunStoreError

__all__ = ["make_server", "find_runs", "ReportServer", "COOKIE", "LOOPBACK"]

COOKIE = "alife_nas_token"
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                               "img-src data:; connect-src 'self'; frame-ancestors 'none'",
}


def find_runs(path: str | Path) -> dict[str, Path]:
    """The runs to serve by name: ``path`` itself when it is a run, else every immediate subfolder
    that is one (by name, sorted). Looked up again on every request, so new runs appear."""
    path = Path(path)
    if (path / DB_NAME).is_file():
        return {path.resolve().name or str(path): path}
    try:
        children = sorted(p for p in path.iterdir() if p.is_dir() and (p / DB_NAME).is_file())
    except OSError:
        return {}
    return {p.name: p for p in children}


class ReportServer(ThreadingHTTPServer):
    """The HTTP server of one ``serve``: what it serves, its token and its URL."""

    daemon_threads = True

    def __init__(self, root: Path, host: str, port: int, token: str) -> None:
        self.root = root
        self.token = token
        super().__init__((host, port), _Handler)
        self.port = int(self.server_address[1])
        shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
        self.url = f"http://{shown if ':' not in shown or shown.startswith('[') else f'[{shown}]'}:{self.port}/?token={token}"
        names = {*LOOPBACK, host.lower(), f"[{host.lower()}]"}
        self.allowed_hosts = {f"{name}:{self.port}" for name in names if name}
        #: Bound beyond the loopback: other machines name it by an address (a name could be rebound).
        self.any_address = host.lower() not in ("127.0.0.1", "localhost", "::1")

    def host_allowed(self, header: str) -> bool:
        """Whether a request's Host header names this server: a loopback name or the bound host,
        with the port; bound beyond the loopback, also any IP address with the port. Never another
        name, which is what DNS rebinding would send."""
        header = header.strip().lower()
        if header in self.allowed_hosts:
            return True
        name, _, port = header.rpartition(":")
        if not self.any_address or port != str(self.port):
            return False
        try:
            ipaddress.ip_address(name[1:-1] if name.startswith("[") and name.endswith("]") else name)
        except ValueError:
            return False
        return True


def make_server(path: str | Path, host: str = "127.0.0.1", port: int = 0, token: str | None = None) -> ReportServer:
    """A server (not yet serving: call ``serve_forever``) for the run or folder of runs at ``path``.

    ``port`` 0 takes any free port (``server.port`` says which). ``token``: None makes a random one
    (``secrets.token_urlsafe``). Raises ValueError when ``path`` is not a folder, OSError when the
    address cannot be bound.
    """
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"{path} is not a folder: give a run directory or a folder of runs")
    return ReportServer(root, host, port, token or secrets.token_urlsafe(24))


class _Handler(BaseHTTPRequestHandler):
    server: ReportServer
    server_version = "alife-nas"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet: a request line would show the token in a log."""

    # --- anything but GET and HEAD ---------------------------------------------------------------
    def _refuse(self) -> None:
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"only GET and HEAD\n", "text/plain; charset=utf-8",
                   {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    # --- the answers ---------------------------------------------------------------------------
    def _answer(self, body: bool) -> None:
        self._with_body = body
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if not self.server.host_allowed(self.headers.get("Host", "")):
            return self._error(HTTPStatus.FORBIDDEN, "unknown Host")
        given = (query.get("token") or [None])[0]
        from_cookie = self._cookie()
        if not any(t is not None and secrets.compare_digest(t.encode(), self.server.token.encode())
                   for t in (given, from_cookie)):
            return self._error(HTTPStatus.FORBIDDEN, "a token is needed: open the URL alife-nas serve printed")
        path = url.path
        try:
            if path in ("/", "/index.html"):
                runs = []
                for name, run_dir in find_runs(self.server.root).items():
                    data = self._read(run_dir, name)
                    if data is not None:
                        runs.append(data)
                page = report_page(runs, live=True, token=self.server.token).encode("utf-8")
                cookie = (f"{COOKIE}={self.server.token}; Path=/; HttpOnly; SameSite=Strict")
                return self._send(HTTPStatus.OK, page, "text/html; charset=utf-8", {"Set-Cookie": cookie})
            if path == "/api/runs":
                return self._json({"runs": [self._totals(name, d) for name, d in find_runs(self.server.root).items()]})
            if path.startswith("/api/run/"):
                name = unquote(path[len("/api/run/"):])
                runs = find_runs(self.server.root)
                if name not in runs:
                    return self._error(HTTPStatus.NOT_FOUND, f"no run named {name!r} here")
                since, after = _whole(query, "since"), _whole(query, "after")
                with RunStore.open(runs[name], readonly=True) as store:
                    return self._json(report_data(store, name=name, since=since, after=after))
        except RunStoreError as exc:
            return self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc))
        except ValueError as exc:
            return self._error(HTTPStatus.BAD_REQUEST, str(exc))
        return self._error(HTTPStatus.NOT_FOUND, "not found")

    def _read(self, run_dir: Path, name: str) -> dict | None:
        try:
            with RunStore.open(run_dir, readonly=True) as store:
                return report_data(store, name=name)
        except RunStoreError:
            return None  # e.g. a run being created: it appears once it can be read

    def _totals(self, name: str, run_dir: Path) -> dict[str, Any]:
        try:
            with RunStore.open(run_dir, readonly=True) as store:
                totals = store.totals()
                return {"name": name, "steps_done": totals["steps_done"], "trainings": totals["trainings"],
                        "initialized": store.initialized}
        except RunStoreError as exc:
            return {"name": name, "error": str(exc)}

    def _cookie(self) -> str | None:
        try:
            jar = SimpleCookie(self.headers.get("Cookie", ""))
        except CookieError:
            return None
        return jar[COOKIE].value if COOKIE in jar else None

    def _json(self, data: Any) -> None:
        self._send(HTTPStatus.OK, json.dumps(data, allow_nan=False).encode("utf-8"), "application/json")

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._send(status, json.dumps({"error": message}).encode("utf-8"), "application/json")

    def _send(self, status: HTTPStatus, payload: bytes, kind: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        for key, value in {**_SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if getattr(self, "_with_body", True) and self.command != "HEAD":
            self.wfile.write(payload)


def _whole(query: dict[str, list[str]], key: str) -> int | None:
    """A whole-number query parameter (None when absent); anything else is a ValueError (400)."""
    values = query.get(key)
    if not values:
        return None
    try:
        return int(values[0])
    except ValueError:
        raise ValueError(f"{key} must be a whole number, got {values[0]!r}") from None
