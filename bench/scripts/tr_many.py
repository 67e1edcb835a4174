#!/usr/bin/python3
"""Adds the first COUNT .torrent files of a directory to a running transmission-daemon
through its RPC and waits until every one seeds, for the bench.

    tr_many.py RPC_PORT TORRENT_DIR COUNT SAVE_PATH LIMIT

Each torrent is one `torrent-add` (`metainfo` in base64, `download-dir` SAVE_PATH).
Transmission has no way to skip its check of data that is already there, so every
torrent is verified before it seeds. Seeding means `status` 6 (TR_STATUS_SEED) and
`percentDone` 1 in `torrent-get`. Prints one JSON line,
{"torrents": N, "seeding": K, "added_s": S, "seeding_s": S}, seconds since this script
started; if not all N seed within LIMIT seconds, K says how many do and "seeding_s" is null.
"""

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request

SEED = 6


class Rpc:
    def __init__(self, port):
        self.url = "http://127.0.0.1:%d/transmission/rpc" % port
        self.session = ""

    def call(self, method, arguments):
        body = json.dumps({"method": method, "arguments": arguments}).encode()
        for _ in range(3):
            request = urllib.request.Request(
                self.url, data=body, headers={"X-Transmission-Session-Id": self.session}
            )
            try:
                with urllib.request.urlopen(request, timeout=120) as reply:
                    answer = json.loads(reply.read())
            except urllib.error.HTTPError as e:
                if e.code == 409:
                    self.session = e.headers.get("X-Transmission-Session-Id", "")
                    continue
                raise
            if answer.get("result") != "success":
                sys.exit("transmission-daemon: %s: %s" % (method, answer.get("result")))
            return answer["arguments"]
        sys.exit("transmission-daemon never gave a session id")


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    limit = float(sys.argv[5])
    started = time.monotonic()
    port, torrent_dir, count, save_path = (
        int(sys.argv[1]),
        sys.argv[2],
        int(sys.argv[3]),
        sys.argv[4],
    )
    names = sorted(n for n in os.listdir(torrent_dir) if n.endswith(".torrent"))[:count]
    rpc = Rpc(port)
    deadline = started + 60
    while True:
        try:
            rpc.call("session-get", {})
            break
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                sys.exit("transmission-daemon's RPC never answered")
            time.sleep(0.05)
    for name in names:
        with open(os.path.join(torrent_dir, name), "rb") as f:
            metainfo = base64.b64encode(f.read()).decode()
        rpc.call("torrent-add", {"metainfo": metainfo, "download-dir": save_path})
    added = time.monotonic() - started
    while True:
        torrents = rpc.call("torrent-get", {"fields": ["id", "status", "percentDone"]})[
            "torrents"
        ]
        seeding = sum(1 for t in torrents if t["status"] == SEED and t["percentDone"] >= 1)
        if len(torrents) >= len(names) and seeding >= len(names):
            break
        if time.monotonic() - started > limit:
            break
        time.sleep(0.05)
    ready = time.monotonic() - started
    print(
        json.dumps(
            {
                "torrents": len(names),
                "seeding": seeding,
                "added_s": added,
                "seeding_s": ready if seeding >= len(names) else None,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
