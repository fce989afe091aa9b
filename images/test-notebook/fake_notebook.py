#!/usr/bin/env python3
"""fake_notebook.py - a stand-in for a Jupyter notebook server in swarmhub's tests.

Installed in the test image as the module `notebook`, so the hub's command
template `python3 -m notebook --NotebookApp.base_url=/user/alice/ ...` starts
it exactly like the real server. Standard library only.

Options (both --opt=value and --opt value):
  --port N               listen port (default 8888); also --NotebookApp.port
  --ip ADDR              listen address (default 0.0.0.0); also --NotebookApp.ip
  --base-url PATH        serve everything under PATH (default /); also
                         --NotebookApp.base_url / --ServerApp.base_url
  --notebook-dir DIR     chdir there first (also --NotebookApp.notebook_dir,
                         --ServerApp.root_dir)
  --NotebookApp.token T  token (default: $JUPYTER_TOKEN); also --ServerApp.token
Any other --NotebookApp.* / --ServerApp.* / --no-browser style flag is ignored.

Every request must carry "Authorization: token T" (or ?token=T), else 403.
Under the base URL:
  GET  api/status        {"started", "last_activity", "connections": 0, "kernels": 0}
  GET  api               {"version": "6.4.12-fake"}
  *    echo-headers      the request's method, path and headers as JSON
  GET  static-1k         1024 bytes of text/plain
  GET  ws-echo           WebSocket (RFC 6455): echoes text/binary messages,
                         answers pings, closes on close
  *    write?name=X      writes X (a plain file name) in the working directory;
                         200 {"path": "/abs/X", "bytes": N} (body or a default line)
  GET  ''  / tree        a small HTML page
Anything else under the base URL is 404 JSON; outside it 404.
Logs one line per request on stderr; exits 0 on SIGTERM/SIGINT.
"""

import base64
import datetime
import hashlib
import json
import os
import signal
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
STATIC_1K = (b"swarmhub static-1k " * 64)[:1023] + b"\n"


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%06dZ" % t.microsecond


ALIASES = {
    "port": "port", "NotebookApp.port": "port", "ServerApp.port": "port",
    "ip": "ip", "NotebookApp.ip": "ip", "ServerApp.ip": "ip",
    "base-url": "base_url", "base_url": "base_url",
    "NotebookApp.base_url": "base_url", "ServerApp.base_url": "base_url",
    "notebook-dir": "dir", "NotebookApp.notebook_dir": "dir",
    "ServerApp.root_dir": "dir", "ServerApp.notebook_dir": "dir",
    "NotebookApp.token": "token", "ServerApp.token": "token",
    "IdentityProvider.token": "token",
}


def parse_args(argv):
    opts = {"port": "8888", "ip": "0.0.0.0", "base_url": "/", "dir": None,
            "token": os.environ.get("JUPYTER_TOKEN", "")}
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if not a.startswith("--"):
            continue                # e.g. a notebook path: ignored
        name, eq, value = a[2:].partition("=")
        key = ALIASES.get(name)
        if key is None:
            continue                # --no-browser, --NotebookApp.foo=..., ...
        if not eq:
            if i >= len(argv):
                sys.exit("fake_notebook: %s needs a value" % a)
            value = argv[i]
            i += 1
        opts[key] = value.strip("'\"") if key == "base_url" else value
    inner = opts["base_url"].strip("/")
    opts["base_url"] = "/" + inner + "/" if inner else "/"
    opts["port"] = int(opts["port"])
    return opts


class Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # as Tornado: no 40 ms Nagle stalls
    server_version = "fake-notebook/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("fake_notebook: %s %s\n" % (
            self.address_string(), fmt % args))

    def send_json(self, code, obj):
        self.send_body(code, json.dumps(obj).encode() + b"\n",
                       "application/json")

    def send_body(self, code, body, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def authorized(self, query):
        token = self.server.opts["token"]
        if not token:
            return True             # like the notebook with an empty token
        auth = self.headers.get("Authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "token" and value.strip() == token:
            return True
        return query.get("token", [None])[0] == token

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self.read_chunked()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def read_chunked(self):
        """Strict: the hub's edge re-frames chunked bodies (no extensions,
        no trailers); anything else is a framing error here."""
        body = b""
        while True:
            line = self.rfile.readline(64)
            if not line.endswith(b"\r\n"):
                raise ValueError("bad chunk size line %r" % line)
            size = int(line[:-2], 16)
            if size == 0:
                if self.rfile.readline(4) != b"\r\n":
                    raise ValueError("trailer after the last chunk")
                return body
            body += self.rfile.read(size)
            if self.rfile.read(2) != b"\r\n":
                raise ValueError("chunk not ended by CRLF")

    def handle_any(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        body = self.read_body()
        base = self.server.opts["base_url"]
        path = url.path
        if path + "/" == base:
            path = base
        if not path.startswith(base):
            return self.send_json(404, {"message": "not under %s" % base})
        if not self.authorized(query):
            return self.send_json(403, {"message": "Forbidden"})
        sub = path[len(base):]
        if sub == "api/status":     # as Jupyter: asking is not activity
            return self.send_json(200, self.server.status())
        if "no_track_activity" not in query:
            self.server.touch()
        if sub == "api":
            return self.send_json(200, {"version": "6.4.12-fake"})
        if sub == "echo-headers":
            return self.send_json(200, {
                "method": self.command, "path": self.path,
                "headers": {k: v for k, v in self.headers.items()},
                "body_bytes": len(body)})
        if sub == "set-cookie":     # the edge keeps the hub's cookies
            self.send_response(200)
            for name in query.get("name", []):
                self.send_header("Set-Cookie", "%s=from-server; Path=/" % name)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if sub == "static-1k":
            return self.send_body(200, STATIC_1K, "text/plain")
        if sub == "write":
            return self.write_file(query, body)
        if sub == "ws-echo":
            return self.ws_echo()
        if sub in ("", "tree"):
            page = b"<!doctype html><title>fake notebook</title>" \
                   b"<h1>fake notebook</h1>\n"
            return self.send_body(200, page, "text/html; charset=utf-8")
        return self.send_json(404, {"message": "no such path: %s" % sub})

    def write_file(self, query, body):
        name = query.get("name", [""])[0]
        if not name or "/" in name or name in (".", ".."):
            return self.send_json(400, {"message": "name must be a file name"})
        data = body or ("written by fake_notebook at %s\n"
                        % iso(utcnow())).encode()
        path = os.path.join(os.getcwd(), name)
        try:
            with open(path, "wb") as f:
                f.write(data)
        except OSError as e:
            return self.send_json(500, {"message": str(e), "path": path})
        return self.send_json(200, {"path": path, "bytes": len(data),
                                    "uid": os.getuid(), "gid": os.getgid()})

    def ws_echo(self):
        key = self.headers.get("Sec-WebSocket-Key")
        if "websocket" not in self.headers.get("Upgrade", "").lower() or not key:
            return self.send_json(400, {"message": "expected a WebSocket upgrade"})
        accept = base64.b64encode(
            hashlib.sha1((key.strip() + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        while True:
            frame = self.ws_read()
            if frame is None:
                return
            opcode, payload = frame
            if opcode == 8:                             # close
                self.ws_send(8, payload[:2])
                return
            if opcode == 9:                             # ping
                self.ws_send(10, payload)
            elif opcode in (0, 1, 2):                   # data: echo
                self.ws_send(opcode, payload)

    def ws_read(self):
        def exact(n):
            b = self.rfile.read(n)
            return b if len(b) == n else None
        head = exact(2)
        if head is None:
            return None
        opcode, masked, n = head[0] & 0x0F, head[1] & 0x80, head[1] & 0x7F
        if n >= 126:
            ext = exact(2 if n == 126 else 8)
            if ext is None:
                return None
            n = int.from_bytes(ext, "big")
        mask = exact(4) if masked else b"\0\0\0\0"
        data = exact(n) if n else b""
        if mask is None or data is None:
            return None
        return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))

    def ws_send(self, opcode, payload):
        n = len(payload)
        if n < 126:
            head = bytes([0x80 | opcode, n])
        elif n < 65536:
            head = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
        else:
            head = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
        self.wfile.write(head + payload)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128        # as Tornado: 5 drops SYNs under load

    def __init__(self, opts):
        self.opts = opts
        self.started = utcnow()
        self.last_activity = self.started
        self.lock = threading.Lock()
        super().__init__((opts["ip"], opts["port"]), Handler)

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], ConnectionError):
            return                  # client went away: not worth a traceback
        super().handle_error(request, client_address)

    def touch(self):
        with self.lock:
            self.last_activity = utcnow()

    def status(self):
        with self.lock:
            last = self.last_activity
        return {"started": iso(self.started), "last_activity": iso(last),
                "connections": 0, "kernels": 0}


def main(argv):
    opts = parse_args(argv)
    if opts["dir"]:
        os.chdir(opts["dir"])
    srv = Server(opts)

    def stop(signum, frame):
        # shutdown() waits for serve_forever(): call it from another thread.
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stderr.write("fake_notebook: listening on http://%s:%d%s (cwd %s)\n" % (
        opts["ip"], opts["port"], opts["base_url"], os.getcwd()))
    sys.stderr.flush()
    srv.serve_forever(poll_interval=0.2)
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
