#!/usr/bin/python3
"""Two libtorrent peers in one process, for tests/pex.rs: peer exchange both ways.

    lt_pex.py learn TORRENT DATA_DIR EMPTY_DIR A_PORT B_PORT
        B seeds DATA_DIR with no extensions (so it speaks no PEX); A, a leecher on EMPTY_DIR
        with ut_pex, connects to B and downloads at most 2 KB/s (so it has next to nothing
        to pass on). Prints "ready" once A and B are connected, then once a second B's
        payload upload ("B uploaded N") and the clients connected to it, until SIGTERM.

    lt_pex.py tell TORRENT C_DIR D_DIR C_PORT D_PORT CCBT_PORT
        D, a leecher with no extensions, waits for ccbt-uring to dial it (the test gives
        ccbt-uring --peer D); then C, a leecher with ut_pex, connects to ccbt-uring. Both
        download at most 20 KB/s, so the swarm lasts. Exits 0 printing "C learned D through
        PEX" once C is connected to D's listening port through a PEX-sourced entry; exits 1
        after 80 s.

Everything stays on 127.0.0.1: no DHT, LSD, UPnP, NAT-PMP or uTP, and more than one
connection per IP is allowed (every peer here is 127.0.0.1, which libtorrent would otherwise
fold into one). Run it with /usr/bin/python3 (Debian's python3-libtorrent).
"""

import signal
import sys
import time

import libtorrent as lt


def session(port, pex, download_limit=0):
    settings = {
        "listen_interfaces": "127.0.0.1:%d" % port,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "allow_multiple_connections_per_ip": True,
        "out_enc_policy": int(lt.enc_policy.disabled),
        "in_enc_policy": int(lt.enc_policy.enabled),
        "download_rate_limit": download_limit,
        # Loopback is the local network, which libtorrent would exempt from the limit.
        "ignore_limits_on_local_network": False,
        "connection_speed": 100,
    }
    # Without the default plugins a session has no ut_pex (nor ut_metadata, smart_ban).
    flags = int(lt.session_flags_t.add_default_plugins) if pex else 0
    return lt.session(settings, flags)


def add(ses, torrent, save_path):
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = save_path
    return ses.add_torrent(params)


def clients(handle):
    return ["%s:%d %s up=%d src=%d" % (p.ip[0], p.ip[1], p.client, p.total_upload, p.source)
            for p in handle.get_peer_info()]


def learn(torrent, data_dir, empty_dir, a_port, b_port):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    b_ses = session(b_port, pex=False)
    a_ses = session(a_port, pex=True, download_limit=2000)
    b = add(b_ses, torrent, data_dir)
    a = add(a_ses, torrent, empty_dir)
    while not b.status().is_seeding:
        time.sleep(0.1)
    deadline = time.time() + 30
    while not a.get_peer_info():
        if time.time() > deadline:
            sys.exit("A never connected to B")
        a.connect_peer(("127.0.0.1", b_port))
        time.sleep(0.5)
    print("ready", flush=True)
    while not stop:
        print("B uploaded %d; B's peers: %s; A's peers: %s"
              % (b.status().total_payload_upload, clients(b), clients(a)), flush=True)
        time.sleep(1)


def tell(torrent, c_dir, d_dir, c_port, d_port, ccbt_port):
    c_ses = session(c_port, pex=True, download_limit=20000)
    d_ses = session(d_port, pex=False, download_limit=20000)
    d = add(d_ses, torrent, d_dir)
    c = add(c_ses, torrent, c_dir)
    print("ready", flush=True)
    deadline = time.time() + 80
    while not d.get_peer_info():
        if time.time() > deadline:
            sys.exit("ccbt-uring never dialled D")
        time.sleep(0.2)
    print("ccbt-uring dialled D: %s" % clients(d), flush=True)
    last_dial = 0
    while time.time() < deadline:
        peers = c.get_peer_info()
        if not any(p.ip[1] == ccbt_port for p in peers) and time.time() - last_dial > 2:
            c.connect_peer(("127.0.0.1", ccbt_port))
            last_dial = time.time()
        for p in peers:
            if p.ip[1] == d_port and p.source & lt.peer_info.pex:
                print("C learned D through PEX: %s" % clients(c), flush=True)
                return
        print("C's peers: %s" % clients(c), flush=True)
        time.sleep(0.5)
    sys.exit("C never learned D")


def main():
    if len(sys.argv) == 7 and sys.argv[1] == "learn":
        learn(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
    elif len(sys.argv) == 8 and sys.argv[1] == "tell":
        tell(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]),
             int(sys.argv[7]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
