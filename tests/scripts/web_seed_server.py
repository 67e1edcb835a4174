#!/usr/bin/env python3
"""A web seed for the tests, on 127.0.0.1, in one of these modes:

  range     serves DIR with HTTP/1.1 keep-alive and byte ranges (206), as nginx would
  404       answers every request 404
  500       answers every request 500 with Retry-After: 1
  loop      redirects every request to itself (302), for ever
  to        redirects every request to the URL given as its third argument (302), as
            indexers answer a torrent's download link with its magnet link
  short     like range, but closes after half of each body
  lie       like range, but names another range in Content-Range

Usage: web_seed_server.py MODE PORT [DIR | URL]. Logs one line per request to stdout.
With WEB_SEED_TLS_CERT and WEB_SEED_TLS_KEY (PEM files) in the environment it serves HTTPS.
"""

import os
import re
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE, PORT = sys.argv[1], int(sys.argv[2])
ARG = sys.argv[3] if len(sys.argv) > 3 else None
ROOT = os.path.realpath(ARG) if ARG and MODE != "to" else None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        print("%s %s" % (self.command, fmt % args), flush=True)

    def plain(self, status, extra=()):
        body = b"no"
        self.send_response(status)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if MODE == "404":
            return self.plain(404)
        if MODE == "500":
            return self.plain(500, [("Retry-After", "1")])
        if MODE == "loop":
            return self.plain(302, [("Location", self.path)])
        if MODE == "to":
            return self.plain(302, [("Location", ARG)])
        path = os.path.realpath(
            os.path.join(ROOT, urllib.parse.unquote(self.path.split("?")[0]).lstrip("/"))
        )
        if not path.startswith(ROOT) or not os.path.isfile(path):
            return self.plain(404)
        size = os.path.getsize(path)
        m = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
        if not m:
            first, last, status = 0, size - 1, 200
        else:
            first, last, status = int(m.group(1)), min(int(m.group(2)), size - 1), 206
        self.send_response(status)
        if status == 206:
            shown = first + 1 if MODE == "lie" else first
            self.send_header("Content-Range", "bytes %d-%d/%d" % (shown, last, size))
        self.send_header("Content-Length", str(last - first + 1))
        self.end_headers()
        with open(path, "rb") as f:
            f.seek(first)
            left = last - first + 1
            if MODE == "short":
                left //= 2
                self.close_connection = True
            while left > 0:
                chunk = f.read(min(left, 1 << 16))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
if os.environ.get("WEB_SEED_TLS_CERT"):
    # HTTPS, with the certificate and key the environment names.
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.environ["WEB_SEED_TLS_CERT"], os.environ["WEB_SEED_TLS_KEY"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
