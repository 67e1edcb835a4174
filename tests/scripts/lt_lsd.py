#!/usr/bin/python3
"""Seeds or downloads one torrent with python3-libtorrent, finding peers by LSD only.

    lt_lsd.py seed     TORRENT SAVE_PATH IP PORT   hash-checks SAVE_PATH, then seeds until
                                                   SIGINT/SIGTERM (exit 0)
    lt_lsd.py download TORRENT SAVE_PATH IP PORT   downloads into SAVE_PATH, exits 0 once
                                                   every piece is verified

For tests/lsd.rs, which runs it inside a network namespace of its own: it listens on IP
only, with local service discovery (BEP 14) on and no DHT, UPnP, NAT-PMP, PeX or uTP, so
the torrent's (dead) tracker aside, LSD is its only way to find a peer. Prints a progress
line a second and the alerts that explain a stuck swarm (lsd_peer among them).

Run it with /usr/bin/python3: Debian's python3-libtorrent lives there.
"""

import signal
import sys
import time

import libtorrent as lt

ALERTS = (
    lt.alert.category_t.error_notification
    | lt.alert.category_t.status_notification
    | lt.alert.category_t.connect_notification
    | lt.alert.category_t.peer_notification
)


def main():
    if len(sys.argv) != 6 or sys.argv[1] not in ("seed", "download"):
        sys.exit(__doc__)
    mode, torrent, save_path, ip, port = sys.argv[1:6]

    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))

    ses = lt.session({
        "listen_interfaces": "%s:%s" % (ip, port),
        "enable_dht": False,
        "enable_lsd": True,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "out_enc_policy": int(lt.enc_policy.disabled),
        "in_enc_policy": int(lt.enc_policy.enabled),
        "alert_mask": int(ALERTS),
        "stop_tracker_timeout": 1,
    })
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = save_path
    params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    params.flags |= lt.torrent_flags.disable_dht | lt.torrent_flags.disable_pex
    handle = ses.add_torrent(params)
    print("lt_lsd: %s %s on %s:%s" % (mode, handle.info_hash(), ip, port), flush=True)

    last_line = 0.0
    while not stop:
        for alert in ses.pop_alerts():
            print("alert: %s: %s" % (alert.what(), alert.message()), flush=True)
        status = handle.status()
        now = time.monotonic()
        if now - last_line >= 1.0:
            last_line = now
            print(
                "progress %.1f%% state=%s peers=%d down=%d up=%d"
                % (status.progress * 100, status.state, status.num_peers,
                   status.total_payload_download, status.total_payload_upload),
                flush=True,
            )
        if status.errc.value() != 0:
            print("lt_lsd: torrent error: %s" % status.errc.message(), flush=True)
            sys.exit(1)
        if mode == "download" and status.is_seeding:
            print("lt_lsd: download complete", flush=True)
            break
        ses.wait_for_alert(200)
    ses.pause()


if __name__ == "__main__":
    main()
