#!/usr/bin/python3
"""Runs a small DHT of python3-libtorrent nodes on 127.0.0.1, for tests/dht.rs.

    lt_dht_mesh.py PORT...

One libtorrent session per PORT (UDP for its DHT node; it holds no torrents), each told of
every other with add_dht_node (asked again every 2 s while its routing table is short), so
the nodes form one DHT that other nodes join through any of them. On a shared 127.0.0.1
libtorrent must allow many nodes per IP in its routing table and searches and must not
rate-limit (block) the address, so those limits are lifted. Prints "mesh: ready" once every
node knows at least half the others, then "mesh: nodes A B C ..." (each node's routing
table size) every 2 s, until SIGINT/SIGTERM (exit 0) or 180 s (exit 1).

Run it with /usr/bin/python3 (Debian's python3-libtorrent).
"""

import signal
import sys
import time
import warnings

import libtorrent as lt


def node(port):
    return lt.session({
        "listen_interfaces": "127.0.0.1:%d" % port,
        "enable_dht": True, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "enable_incoming_utp": False, "enable_outgoing_utp": False,
        "dht_bootstrap_nodes": "",
        "dht_restrict_routing_ips": False, "dht_restrict_search_ips": False,
        "dht_upload_rate_limit": 1 << 20,
        "dht_block_ratelimit": 100000,
        "alert_mask": int(lt.alert.category_t.error_notification),
    })


def main():
    ports = [int(p) for p in sys.argv[1:]]
    if len(ports) < 2:
        sys.exit(__doc__)
    warnings.simplefilter("ignore", DeprecationWarning)
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    sessions = [node(p) for p in ports]
    ready = False
    last = 0.0
    start = time.monotonic()
    while not stop:
        if time.monotonic() > start + 180:
            sys.exit(1)
        for ses in sessions:
            for alert in ses.pop_alerts():
                print("alert: %s: %s" % (alert.what(), alert.message()), flush=True)
        now = time.monotonic()
        if now - last >= 2.0:
            last = now
            sizes = [ses.status().dht_nodes for ses in sessions]
            for ses, size, port in zip(sessions, sizes, ports):
                if size < len(ports) // 2:
                    for other in ports:
                        if other != port:
                            ses.add_dht_node(("127.0.0.1", other))
            if not ready and min(sizes) >= len(ports) // 2:
                ready = True
                print("mesh: ready", flush=True)
            print("mesh: nodes %s" % " ".join(str(s) for s in sizes), flush=True)
        time.sleep(0.1)
    sys.exit(0)


if __name__ == "__main__":
    main()
