#!/usr/bin/python3
"""Seeds every .torrent of a directory from one python3-libtorrent session, for the bench.

    lt_many.py recheck|seed_mode TORRENT_DIR SAVE_PATH PORT

`recheck` hash-checks every torrent's data first (as `ccbt-uring seed` does); `seed_mode`
trusts it (libtorrent's seed_mode: pieces are checked lazily, on first request). Prints
`seeding N torrents on port P, loaded in S s` once every torrent is in the seeding state
(the same line as `ccbt-uring seed`), then seeds until SIGINT/SIGTERM.

Torrents are added without auto-management and with no active limits, so all of them seed
at once rather than libtorrent's default few. No DHT, LSD, UPnP, NAT-PMP or uTP; 127.0.0.1
only. Run it with /usr/bin/python3 (Debian's python3-libtorrent).
"""

import os
import signal
import sys
import time

import libtorrent as lt


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("recheck", "seed_mode"):
        sys.exit(__doc__)
    started = time.monotonic()
    mode, torrent_dir, save_path, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    names = sorted(n for n in os.listdir(torrent_dir) if n.endswith(".torrent"))
    ses = lt.session(
        {
            "listen_interfaces": "127.0.0.1:%d" % port,
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "enable_incoming_utp": False,
            "enable_outgoing_utp": False,
            "allow_multiple_connections_per_ip": True,
            "active_limit": -1,
            "active_seeds": -1,
            "active_checking": os.cpu_count() or 1,
            "alert_mask": int(lt.alert.category_t.error_notification),
            # One add_torrent_alert per torrent: the default queue (2000) would drop some
            # of 10,000, and the wait below would never end.
            "alert_queue_size": 2 * len(names) + 1000,
        }
    )
    flags = lt.torrent_flags.seed_mode if mode == "seed_mode" else 0
    for name in names:
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(os.path.join(torrent_dir, name))
        params.save_path = save_path
        params.flags = flags
        ses.async_add_torrent(params)
    handles = []
    while len(handles) < len(names):
        ses.wait_for_alert(1000)
        for a in ses.pop_alerts():
            if isinstance(a, lt.add_torrent_alert):
                if a.error.value():
                    sys.exit("cannot add %s: %s" % (a.torrent_name, a.error.message()))
                handles.append(a.handle)
    pending = handles
    while pending:
        pending = [h for h in pending if h.status(0).state != lt.torrent_status.seeding]
        if pending:
            time.sleep(0.02)
    print(
        "seeding %d torrents on port %d, loaded in %.3f s (0 skipped)"
        % (len(handles), port, time.monotonic() - started),
        flush=True,
    )
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    while not stop:
        time.sleep(0.1)


if __name__ == "__main__":
    main()
