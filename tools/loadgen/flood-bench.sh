#!/usr/bin/env bash
# The flood benchmark (BENCHMARKS.md, "Flood"): `ccbt-uring seed` serves 64 MiB; 8 load
# generator leechers download alone for 10 s, then for 60 s under CONNECTIONS hostile
# connections of every kind, started 5 s before them. Prints both throughputs, the flood's
# report, the seeder's most descriptors and RSS during the flood, and its descriptors after.
# Run from the repository after `cargo build --bin ccbt-uring -p ccbt-loadgen`; works in a
# temporary directory it removes.
set -euo pipefail
CONNECTIONS=${CONNECTIONS:-10000}
PORT=${PORT:-17001}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
L=$ROOT/target/debug/ccbt-loadgen
C=$ROOT/target/debug/ccbt-uring
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
$L make-torrent --size 67108864 --piece-size 262144 --seed 5 --out t.torrent --write-files data >/dev/null
$C seed t.torrent --data data --port $PORT --listen 127.0.0.1 --no-dht --shards 2 > seed.log 2>&1 &
P=$!; sleep 3
echo "idle fds $(ls /proc/$P/fd | wc -l)"
$L leech --torrent t.torrent --target 127.0.0.1:$PORT --peers 8 --duration 10 --shards 1 | grep -E "throughput|each"
$L flood --torrent t.torrent --target 127.0.0.1:$PORT --connections $CONNECTIONS --duration 75 --shards 1 > flood.out 2>&1 &
F=$!; sleep 5
( for i in $(seq 60); do sleep 1; echo "$(ls /proc/$P/fd | wc -l) $(grep VmRSS /proc/$P/status | awk '{print $2}')"; done > samples.txt ) &
$L leech --torrent t.torrent --target 127.0.0.1:$PORT --peers 8 --duration 60 --shards 1 | grep -E "throughput|disconnects|each"
wait $F
cat flood.out
sort -n samples.txt | tail -1 | sed 's/^/max fds, rss kib: /'
awk '{ if ($2>m) m=$2 } END { print "max rss kib " m }' samples.txt
sleep 12; echo "fds after $(ls /proc/$P/fd | wc -l)"; grep VmHWM /proc/$P/status
kill $P
wait $P 2>/dev/null || true
