#!/usr/bin/python3
"""Seeds one torrent that has no tracker with python3-libtorrent, found through the DHT only.

    lt_dht_seed.py TORRENT SAVE_PATH PORT BOOTSTRAP_PORT

libtorrent listens on 127.0.0.1:PORT (TCP, and UDP for its DHT node), bootstraps its DHT
from 127.0.0.1:BOOTSTRAP_PORT (asked again every 2 s while its routing table is empty:
that node may start after us), and seeds the torrent, announcing it on the DHT every 2 s. Loopback addresses
are allowed in the routing table and searches, and the DHT rate limits (and the per-address block) are raised. Seeds
until SIGINT/SIGTERM (exit 0). Run it with /usr/bin/python3 (Debian's python3-libtorrent).
"""

import signal
import sys
import time
import warnings

import libtorrent as lt


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    torrent, save_path, port, boot = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    warnings.simplefilter("ignore", DeprecationWarning)
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    ses = lt.session({
        "listen_interfaces": "127.0.0.1:%d" % port,
        "enable_dht": True, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "enable_incoming_utp": False, "enable_outgoing_utp": False,
        "dht_bootstrap_nodes": "127.0.0.1:%d" % boot,
        "dht_restrict_routing_ips": False, "dht_restrict_search_ips": False,
        "dht_upload_rate_limit": 1 << 20,
        # Many nodes share 127.0.0.1 in the mesh test: do not block the address.
        "dht_block_ratelimit": 100000,
        "allow_multiple_connections_per_ip": True,
        "out_enc_policy": int(lt.enc_policy.disabled),
        "in_enc_policy": int(lt.enc_policy.enabled),
        "alert_mask": int(lt.alert.category_t.error_notification
                          | lt.alert.category_t.dht_notification
                          | lt.alert.category_t.connect_notification),
    })
    print("lt_dht_seed: listening on 127.0.0.1:%d" % ses.listen_port(), flush=True)
    handle = None
    last_announce = 0.0
    start = time.monotonic()
    while not stop and time.monotonic() < start + 120:
        for alert in ses.pop_alerts():
            print("alert: %s: %s" % (alert.what(), alert.message()), flush=True)
        nodes = ses.status().dht_nodes
        if handle is None:
            params = lt.add_torrent_params()
            params.ti = lt.torrent_info(torrent)
            params.save_path = save_path
            params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
            handle = ses.add_torrent(params)
            print("lt_dht_seed: seeding %s, %d DHT nodes" % (handle.info_hash(), nodes), flush=True)
        now = time.monotonic()
        if handle is not None and now - last_announce >= 2.0:
            last_announce = now
            if nodes == 0:
                ses.add_dht_node(("127.0.0.1", boot))
            handle.force_dht_announce()
            st = handle.status()
            print("lt_dht_seed: state=%s peers=%d up=%d dht_nodes=%d"
                  % (st.state, st.num_peers, st.total_payload_upload, nodes), flush=True)
        ses.wait_for_alert(200)
    sys.exit(0)


if __name__ == "__main__":
    main()
