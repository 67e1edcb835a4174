#!/usr/bin/python3
"""Adds the first COUNT .torrent files of a directory to a running qbittorrent-nox through
its WebAPI v2 and waits until every one seeds, for the bench.

    qbt_many.py WEBUI_PORT TORRENT_DIR COUNT SAVE_PATH LIMIT

Torrents go in batches of 100 per `POST /api/v2/torrents/add` (multipart `torrents`
fields) with `savepath=SAVE_PATH`, `skip_checking=true` (the data is trusted, as the
ccbt-uring daemon trusts its resume data) and `autoTMM=false`. Seeding means a state of
`uploading`, `stalledUP` or `forcedUP` in `/api/v2/torrents/info`. The WebUI must need
no login from localhost (`WebUI\\LocalHostAuth=false`). Prints one JSON line,
{"torrents": N, "seeding": K, "added_s": S, "seeding_s": S}, seconds since this script
started; if not all N seed within LIMIT seconds, K says how many do and "seeding_s" is null.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

BATCH = 100
SEEDING = {"uploading", "stalledUP", "forcedUP"}


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
    base = "http://127.0.0.1:%d/api/v2" % port
    names = sorted(n for n in os.listdir(torrent_dir) if n.endswith(".torrent"))[:count]
    wait_up(base, started + 60)
    for i in range(0, len(names), BATCH):
        add(base, torrent_dir, names[i : i + BATCH], save_path)
    added = time.monotonic() - started
    while True:
        torrents = json.loads(get(base + "/torrents/info"))
        seeding = sum(1 for t in torrents if t.get("state") in SEEDING)
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


def get(url):
    with urllib.request.urlopen(url, timeout=120) as reply:
        return reply.read()


def wait_up(base, deadline):
    while True:
        try:
            get(base + "/app/version")
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                sys.exit("qbittorrent-nox's WebUI never answered")
            time.sleep(0.05)


def add(base, torrent_dir, names, save_path):
    boundary = "----ccbt-bench-%d" % time.monotonic_ns()
    parts = []
    for key, value in (("savepath", save_path), ("skip_checking", "true"), ("autoTMM", "false")):
        parts.append(
            ('--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
             % (boundary, key, value)).encode()
        )
    for name in names:
        with open(os.path.join(torrent_dir, name), "rb") as f:
            body = f.read()
        parts.append(
            ('--%s\r\nContent-Disposition: form-data; name="torrents"; filename="%s"\r\n'
             "Content-Type: application/x-bittorrent\r\n\r\n" % (boundary, name)).encode()
            + body
            + b"\r\n"
        )
    parts.append(("--%s--\r\n" % boundary).encode())
    request = urllib.request.Request(
        base + "/torrents/add",
        data=b"".join(parts),
        headers={"Content-Type": "multipart/form-data; boundary=" + boundary},
    )
    with urllib.request.urlopen(request, timeout=120) as reply:
        answer = reply.read().decode(errors="replace")
    if answer.strip() != "Ok.":
        sys.exit("qbittorrent-nox refused a batch: %s" % answer)


if __name__ == "__main__":
    main()
