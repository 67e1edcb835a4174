#!/usr/bin/env bash
# The flood benchmark (BENCHMARKS.md, "Flood"). `ccbt-uring seed` serves 64 MiB with two
# shards, and CONNECTIONS hostile connections of every kind come at it, in two phases:
#  1. Leechers that stay: 8 load generator leechers download for 80 s; the flood runs from
#     second 15 to second 75. Their throughput alone (seconds 3-15) against under the flood
#     (seconds 16-75), and the seeder's CPU time in each window.
#  2. Newcomers: once the first flood's descriptors are back, a second flood for 75 s, and
#     8 new leechers that arrive 5 s into it and download for 60 s.
# Prints the figures, each flood's report, and the seeder's most descriptors and RSS.
# Run from the repository after `cargo build -p ccbt-uring -p ccbt-loadgen`; works in a
# temporary directory it removes.
set -euo pipefail
CONNECTIONS=${CONNECTIONS:-10000}
PORT=${PORT:-17001}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
L=$ROOT/target/debug/ccbt-loadgen
C=$ROOT/target/debug/ccbt-uring
WORK=$(mktemp -d)
P=
cleanup() {
    [ -n "$P" ] && kill "$P" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
TICKS=$(getconf CLK_TCK)

# Seconds of CPU (user and system) the seeder has used so far.
cpu_ticks() { awk '{ print $14 + $15 }' /proc/$P/stat; }
# One line a second, for `seconds`: second, descriptors, RSS KiB, CPU ticks.
sample() {
    for i in $(seq 0 "$1"); do
        echo "$i $(ls /proc/$P/fd | wc -l) $(awk '/VmRSS/ { print $2 }' /proc/$P/status) $(cpu_ticks)"
        sleep 1
    done
}
# The MB of seconds `from`..`to` (1-based, inclusive) of a leech report's per-second line.
mb_between() {
    awk -v from="$2" -v to="$3" '/^MB each second/ {
        s = 0; for (i = from; i <= to; i++) s += $(i + 3); print s }' "$1"
}
# CPU seconds the seeder used between two samples.
cpu_between() {
    awk -v from="$2" -v to="$3" -v hz="$TICKS" '
        $1 == from { a = $4 } $1 == to { b = $4 } END { printf "%.1f", (b - a) / hz }' "$1"
}
peak() { sort -n -k"$2" "$1" | tail -1 | awk -v k="$2" '{ print $k }'; }

$L make-torrent --size 67108864 --piece-size 262144 --seed 5 --out t.torrent --write-files data >/dev/null
$C seed t.torrent --data data --port $PORT --listen 127.0.0.1 --no-dht --shards 2 > seed.log 2>&1 &
P=$!; sleep 3
echo "idle fds $(ls /proc/$P/fd | wc -l)"
flood() {
    $L flood --torrent t.torrent --target 127.0.0.1:$PORT --connections "$CONNECTIONS" \
        --duration "$1" --shards 1
}

echo "== phase 1: leechers that stay, the flood from second 15 to 75"
sample 82 > samples1.txt &
S=$!
$L leech --torrent t.torrent --target 127.0.0.1:$PORT --peers 8 --duration 80 --shards 1 > stay.out &
LP=$!
sleep 15
flood 60 > flood1.out 2>&1
wait $LP
wait $S
alone=$(mb_between stay.out 3 15)
under=$(mb_between stay.out 16 75)
cpu_alone=$(cpu_between samples1.txt 3 15)
cpu_under=$(cpu_between samples1.txt 16 75)
awk -v a="$alone" -v u="$under" -v ca="$cpu_alone" -v cu="$cpu_under" 'BEGIN {
    printf "alone:       %.0f MB/s, %.0f MB per seeder CPU-second (%.1f CPU s in 13 s)\n", a / 13, a / ca, ca
    printf "under flood: %.0f MB/s, %.0f MB per seeder CPU-second (%.1f CPU s in 60 s)\n", u / 60, u / cu, cu
    printf "kept:        %.0f%% of throughput, %.0f%% of MB per seeder CPU-second\n", 100 * (u / 60) / (a / 13), 100 * (u / cu) / (a / ca)
}'
grep "^MB each second" stay.out
cat flood1.out
echo "most fds $(peak samples1.txt 2), most RSS KiB $(peak samples1.txt 3)"

echo "== phase 2: newcomers arriving 5 s into the flood"
for _ in $(seq 30); do
    [ "$(ls /proc/$P/fd | wc -l)" -le 40 ] && break
    sleep 1
done
echo "fds before $(ls /proc/$P/fd | wc -l)"
flood 75 > flood2.out 2>&1 &
F=$!; sleep 5
sample 60 > samples2.txt &
S=$!
$L leech --torrent t.torrent --target 127.0.0.1:$PORT --peers 8 --duration 60 --shards 1 > new.out
wait $F
wait $S
grep -E "throughput|disconnects|^MB each second" new.out
first=$(awk '/^MB each second/ { for (i = 4; i <= NF; i++) if ($i > 0) { print i - 3; exit } }' new.out)
echo "newcomers' first second with data: ${first:-none}"
cat flood2.out
echo "most fds $(peak samples2.txt 2), most RSS KiB $(peak samples2.txt 3)"
sleep 12; echo "fds after $(ls /proc/$P/fd | wc -l)"; grep VmHWM /proc/$P/status
