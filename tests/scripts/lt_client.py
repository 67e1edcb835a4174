#!/usr/bin/python3
"""Seeds or downloads one torrent with python3-libtorrent, for the interop tests.

    lt_client.py seed     TORRENT SAVE_PATH PORT   hash-checks SAVE_PATH, then seeds until
                                                   SIGINT/SIGTERM (exit 0)
    lt_client.py download TORRENT SAVE_PATH PORT   downloads into SAVE_PATH, exits 0 once
                                                   every piece is verified

TORRENT may be a magnet link for download: libtorrent then fetches the metadata from the
peers the link's tracker names, and from LT_PEER (host:port) if set.

Everything stays on 127.0.0.1 and the tracker in the torrent: no DHT, LSD, UPnP, NAT-PMP,
PeX or uTP. Several peers of a test swarm share 127.0.0.1, so libtorrent must allow more
than one connection per IP. Prints one plain progress line a second and the alerts that
explain a stuck swarm (tracker replies and errors, peer connects and disconnects).

LT_SEEDBOX=1 starts from libtorrent's own high_performance_seed() preset, as a seedbox is
tuned (8000 connections, every interested peer unchoked, deep request queues and send
buffers), instead of the defaults (200 connections, 8 upload slots); the benchmark of many
leechers against one seeder sets it.

Run it with /usr/bin/python3: Debian's python3-libtorrent lives there, not in other pythons.
"""

import os
import signal
import sys
import time

import libtorrent as lt

ALERTS = (
    lt.alert.category_t.error_notification
    | lt.alert.category_t.status_notification
    | lt.alert.category_t.tracker_notification
    | lt.alert.category_t.connect_notification
    | lt.alert.category_t.storage_notification
)


def settings(port):
    # LT_UPLOAD_LIMIT (bytes/s) throttles a seeder so that leechers must trade with each other.
    limit = int(os.environ.get("LT_UPLOAD_LIMIT", "0"))
    base = lt.high_performance_seed() if os.environ.get("LT_SEEDBOX") == "1" else {}
    return {
        **base,
        "upload_rate_limit": limit,
        # Loopback counts as the local network, which libtorrent would exempt from limits.
        "ignore_limits_on_local_network": limit == 0,
        "listen_interfaces": "127.0.0.1:%d" % port,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "allow_multiple_connections_per_ip": True,
        # Plain BEP 3 first: try no encrypted handshake, still accept one.
        "out_enc_policy": int(lt.enc_policy.disabled),
        "in_enc_policy": int(lt.enc_policy.enabled),
        "alert_mask": int(ALERTS),
        "stop_tracker_timeout": 2,
        "connection_speed": 100,
    }


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("seed", "download"):
        sys.exit(__doc__)
    mode, torrent, save_path, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))

    ses = lt.session(settings(port))
    if torrent.startswith("magnet:"):
        params = lt.parse_magnet_uri(torrent)
    else:
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(torrent)
    params.save_path = save_path
    params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    params.flags |= lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
    handle = ses.add_torrent(params)
    print("lt_client: %s %s on 127.0.0.1:%d" % (mode, handle.info_hash(), port), flush=True)
    if os.environ.get("LT_PEER"):
        host, peer_port = os.environ["LT_PEER"].rsplit(":", 1)
        handle.connect_peer((host, int(peer_port)))
    said_metadata = False

    last_line = 0.0
    while not stop:
        for alert in ses.pop_alerts():
            print("alert: %s: %s" % (alert.what(), alert.message()), flush=True)
        status = handle.status()
        if status.has_metadata and not said_metadata:
            said_metadata = True
            print("lt_client: have metadata", flush=True)
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
            print("lt_client: torrent error: %s" % status.errc.message(), flush=True)
            sys.exit(1)
        if mode == "download" and status.is_seeding:
            print("lt_client: download complete", flush=True)
            break
        ses.wait_for_alert(200)

    # Announce `stopped` so the tracker forgets us (if there is one), then leave.
    ses.pause()
    deadline = time.monotonic() + (3 if handle.trackers() else 0)
    while time.monotonic() < deadline:
        if any(isinstance(a, lt.tracker_reply_alert) or isinstance(a, lt.tracker_error_alert)
               for a in ses.pop_alerts()):
            break
        ses.wait_for_alert(200)
    sys.exit(0)


if __name__ == "__main__":
    main()
