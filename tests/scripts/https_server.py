"""Serves a directory over HTTPS on 127.0.0.1 (a port the kernel picks), for the WebAPI
test of `torrents/add` with https:// URLs.

    https_server.py CERT.pem KEY.pem DIRECTORY

Prints `Serving HTTPS on 127.0.0.1 port N` once it listens; runs until killed.
"""

import functools
import http.server
import ssl
import sys

cert, key, directory = sys.argv[1:4]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(f"Serving HTTPS on 127.0.0.1 port {server.server_address[1]}", flush=True)
server.serve_forever()
