#!/usr/bin/python3
"""Downloads a magnet link (no tracker) with python3-libtorrent, finding peers through the
DHT only.

    lt_dht_download.py MAGNET SAVE_PATH PORT BOOTSTRAP_PORT

libtorrent listens on 127.0.0.1:PORT (TCP, and UDP for its DHT node), bootstraps its DHT
from 127.0.0.1:BOOTSTRAP_PORT (asked again every 2 s while its routing table is empty:
that node may start after us), and looks the magnet's hash up on the DHT every 2 s until
it has the whole torrent; then exits 0 (1 after 60 s). Run it with /usr/bin/python3.
"""

import sys
import time
import warnings

import libtorrent as lt


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    magnet, save_path, port, boot = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    warnings.simplefilter("ignore", DeprecationWarning)
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
    print("lt_dht_download: listening on 127.0.0.1:%d" % ses.listen_port(), flush=True)
    params = lt.parse_magnet_uri(magnet)
    params.save_path = save_path
    params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    handle = ses.add_torrent(params)
    last = 0.0
    start = time.monotonic()
    while time.monotonic() < start + 60:
        for alert in ses.pop_alerts():
            print("alert: %s: %s" % (alert.what(), alert.message()), flush=True)
        st = handle.status()
        if st.is_seeding:
            print("lt_dht_download: download complete", flush=True)
            sys.exit(0)
        now = time.monotonic()
        if now - last >= 2.0:
            last = now
            nodes = ses.status().dht_nodes
            if nodes == 0:
                ses.add_dht_node(("127.0.0.1", boot))
            handle.force_dht_announce()
            print("lt_dht_download: progress %.1f%% peers=%d dht_nodes=%d"
                  % (st.progress * 100, st.num_peers, nodes), flush=True)
        ses.wait_for_alert(200)
    sys.exit(1)


if __name__ == "__main__":
    main()
