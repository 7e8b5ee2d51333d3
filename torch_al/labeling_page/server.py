"""The labeling page's HTTP server (the standard library's, one thread per request).

Routes: ``GET /`` the page, ``GET /static/<file>`` its script and style, ``GET /api/query`` the
query's state, ``GET /item/<index>`` an item's image, ``POST /api/answer`` ``{"index", "label"}``,
``POST /api/undo``. A POST must be JSON and carry the ``X-Torch-AL`` header, which a form on
another site cannot send, so no other page in the browser can answer for you. On a loopback
address the Host header must name it (no DNS rebinding); on any other address every request needs
the token: ``?token=`` in the URL it printed, after which the page's own requests carry it in a
same-site cookie (or the ``X-Torch-AL-Token`` header)."""

import hmac
import ipaddress
import json
import logging
import secrets
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from torch_al.labeling_page.session import AnswerRefused, LabelingSession

logger = logging.getLogger("torch_al")
STATIC = {"page.js": "text/javascript", "page.css": "text/css"}
COOKIE = "torch_al_token"
MAX_BODY = 4096


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class LabelingServer(ThreadingHTTPServer):
    """Serves a :class:`LabelingSession` at ``http://host:port/`` (port 0: a free one).

    Args:
        session: what the page labels.
        host: 127.0.0.1 by default; any other address needs a token (one is made when None).
        port: the port, or 0 for any free one (read :attr:`url`).
        token: the access token; None makes one for a non-loopback host, none is asked on loopback.
    """

    daemon_threads = True

    def __init__(self, session: LabelingSession, host: str = "127.0.0.1", port: int = 0, token: str | None = None) -> None:
        self.session = session
        self.token = token if token is not None or is_loopback(host) else secrets.token_urlsafe(24)
        super().__init__((host, port), LabelingHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/" + (f"?token={self.token}" if self.token else "")


class LabelingHandler(BaseHTTPRequestHandler):
    server: LabelingServer

    def log_message(self, format: str, *args) -> None:
        logger.debug("labeling page: " + format, *args)

    def do_GET(self) -> None:
        path = self._allowed()
        if path is None:
            return
        if path == "/":
            # The page's script, style and images are fetched without ?token=: the cookie carries it.
            cookie = f"{COOKIE}={self.server.token}; Path=/; HttpOnly; SameSite=Strict" if self.server.token else None
            self._send(HTTPStatus.OK, resources.files(__package__).joinpath("page.html").read_bytes(), "text/html; charset=utf-8", cookie)
        elif path.startswith("/static/") and path[len("/static/") :] in STATIC:
            name = path[len("/static/") :]
            self._send(HTTPStatus.OK, resources.files(__package__).joinpath(name).read_bytes(), STATIC[name] + "; charset=utf-8")
        elif path == "/api/query":
            self._answer_with(self.server.session.snapshot, path)
        elif path.startswith("/item/"):
            self._answer_with(lambda: self._item(path[len("/item/") :]), path)
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {path}"})

    def do_POST(self) -> None:
        path = self._allowed()
        if path is None:
            return
        if self.headers.get("X-Torch-AL") != "1":
            return self._json(HTTPStatus.FORBIDDEN, {"error": "a change must come from the labeling page (header X-Torch-AL: 1)"})
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            return self._json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": "the body must be JSON (Content-Type: application/json)"})
        body = self._body()
        if body is None:
            return
        session = self.server.session
        if path == "/api/answer":
            self._answer_with(lambda: session.answer(body.get("index"), body.get("label")), path)
        elif path == "/api/undo":
            self._answer_with(session.undo, path)
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such action: {path}"})

    def _answer_with(self, action, path: str) -> None:
        """Sends what ``action()`` returns as JSON (None: it answered itself), or why it failed."""
        try:
            payload = action()
            if payload is not None:
                self._json(HTTPStatus.OK, payload)
        except AnswerRefused as refused:
            self._json(refused.status, {"error": str(refused)})
        except Exception as error:  # e.g. the state file unreadable, or the next sub-batch not chosen: say so on the page, keep serving
            logger.exception("labeling page: %s failed", path)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(error).__name__}: {error} (the log of torch-al annotate has the details)"})

    def _allowed(self) -> str | None:
        """The request's path when it may be served; otherwise answers it and returns None."""
        url = urlsplit(self.path)
        server = self.server
        if server.token:
            cookies = SimpleCookie(self.headers.get("Cookie") or "")
            given = self.headers.get("X-Torch-AL-Token") or parse_qs(url.query).get("token", [""])[0] or (cookies[COOKIE].value if COOKIE in cookies else "")
            if not hmac.compare_digest(given.encode(), server.token.encode()):
                self._json(HTTPStatus.UNAUTHORIZED, {"error": "this page needs its token: open the URL torch-al annotate printed"})
                return None
        else:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
            if not is_loopback(host):
                self._json(HTTPStatus.FORBIDDEN, {"error": f"Host {self.headers.get('Host')!r} is not this machine's loopback address"})
                return None
        return url.path

    def _body(self) -> dict | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"the body must be a JSON object of at most {MAX_BODY} bytes"})
            return None
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError as error:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"the body is not JSON: {error}"})
            return None
        if not isinstance(body, dict):
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"the body must be a JSON object, got {type(body).__name__}"})
            return None
        return body

    def _item(self, name: str) -> None:
        if not name.isdigit():
            raise AnswerRefused(f"no item {name!r}", status=404)
        view = self.server.session.view(int(name))
        if view.kind != "image":
            raise AnswerRefused(f"item {name} is text, shown on the page itself", status=404)
        self._send(HTTPStatus.OK, view.content, view.mime)

    def _json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str, cookie: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if cookie:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'")
        self.end_headers()
        self.wfile.write(body)
