"""Terminates TLS on 127.0.0.1 (a port the kernel picks) and relays each connection's
bytes to 127.0.0.1:UPSTREAM, for the tests of https trackers (opentracker speaks plain
HTTP only).

    tls_proxy.py CERT.pem KEY.pem UPSTREAM_PORT

Prints `Serving HTTPS on 127.0.0.1 port N` once it listens and `relayed` after each
connection whose handshake succeeded; runs until killed.
"""

import socket
import ssl
import sys
import threading

cert, key, upstream = sys.argv[1], sys.argv[2], int(sys.argv[3])
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
listener = socket.create_server(("127.0.0.1", 0))
print(f"Serving HTTPS on 127.0.0.1 port {listener.getsockname()[1]}", flush=True)


def pump(src, dst):
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(raw):
    raw.settimeout(30)
    try:
        tls = context.wrap_socket(raw, server_side=True)
    except (ssl.SSLError, OSError) as e:
        print(f"handshake failed: {e}", flush=True)
        raw.close()
        return
    up = socket.create_connection(("127.0.0.1", upstream), timeout=30)
    print("relayed", flush=True)
    threading.Thread(target=pump, args=(up, tls), daemon=True).start()
    pump(tls, up)


while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
