#!/usr/bin/env bash
# Seeds or downloads one torrent with transmission-cli 3.00, for the interop tests.
#
#   transmission_client.sh seed     TORRENT DIR PORT   verifies DIR's data, seeds until
#                                                      SIGINT/SIGTERM (exit 0)
#   transmission_client.sh download TORRENT DIR PORT   downloads into DIR, exits 0 once the
#                                                      torrent is complete and verified
#
# transmission-cli never exits by itself, so in download mode its torrent-done script
# (-f) drops a marker and this wrapper stops it. It gets a private config dir whose
# settings.json turns off DHT, LPD, PeX, uTP and port mapping, so the tracker is the only
# way peers meet. stdbuf: transmission-cli block-buffers stdout when it is not a terminal.
#
# Loopback quirk: transmission 3.00 never dials peers whose address is 127.x (its
# isMartianAddr check, with no setting to turn it off) but accepts them incoming. On
# 127.0.0.1 it only exchanges data with peers that connect to it, so the tests start
# transmission first and let the other side learn its address from the tracker.
set -euo pipefail

if [[ $# -ne 4 || ( $1 != seed && $1 != download ) ]]; then
  echo "usage: $0 seed|download TORRENT DIR PORT" >&2
  exit 2
fi
mode=$1 torrent=$2 dir=$3 port=$4

conf=$(mktemp -d "${TMPDIR:-/tmp}/transmission-client.XXXXXX")
cli=""
cleanup() {
  if [[ -n $cli ]] && kill -0 "$cli" 2>/dev/null; then
    kill -INT "$cli" 2>/dev/null || true
    wait "$cli" 2>/dev/null || true
  fi
  rm -rf "$conf"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

cat >"$conf/settings.json" <<EOF
{
  "dht-enabled": false,
  "lpd-enabled": false,
  "pex-enabled": false,
  "utp-enabled": false,
  "port-forwarding-enabled": false,
  "rpc-enabled": false,
  "bind-address-ipv4": "127.0.0.1",
  "bind-address-ipv6": "::1",
  "peer-port-random-on-start": false,
  "encryption": 0,
  "message-level": 2,
  "start-added-torrents": true
}
EOF

args=(-g "$conf" -w "$dir" -p "$port")
marker="$conf/complete"
if [[ $mode == download ]]; then
  printf '#!/bin/sh\ntouch "%s"\n' "$marker" >"$conf/done.sh"
  chmod +x "$conf/done.sh"
  args+=(-f "$conf/done.sh")
fi

stdbuf -o0 -e0 transmission-cli "${args[@]}" "$torrent" &
cli=$!
while kill -0 "$cli" 2>/dev/null; do
  if [[ -e $marker ]]; then
    echo
    echo "transmission_client: download complete"
    exit 0
  fi
  sleep 0.2
done
wait "$cli" && status=0 || status=$?
cli=""
echo "transmission_client: transmission-cli exited early (status $status)" >&2
exit 1
