#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) and prints executions per target.
#
#   fuzz/run.sh [SECONDS]            every target
#   TARGETS="bencode peer_session" fuzz/run.sh 600
#   FUZZ_BUILD_ARGS=--dev fuzz/run.sh 3          a debug build (a third of the
#                                                release build's CPU), each target 3 s
#   FUZZ_RUNS=300 FUZZ_BUILD_ARGS=--dev fuzz/run.sh   CI: each target a fixed number of
#                                                inputs from a fixed seed, so the step
#                                                passes or fails the same way every time
#
# Needs a nightly toolchain and cargo-fuzz (tools/install-deps.sh installs cargo-fuzz).
# New inputs go to fuzz/corpus-run/<target>/ (not checked in); the checked-in seeds in
# fuzz/corpus/<target>/ are read, never written. A crash stops that target, leaves its input
# in fuzz/artifacts/<target>/, and makes the script exit 1 after the other targets ran:
# fix it, then copy the input into fuzz/corpus/<target>/ as a regression (FUZZING.md).
set -uo pipefail
cd "$(dirname "$0")"

seconds="${1:-60}"
case "$seconds" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac
if [ -n "${TARGETS:-}" ]; then
  read -r -a targets <<<"$TARGETS"
else
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^ccbt-fuzz$')
fi
echo "== building ${#targets[@]} fuzz targets"
# shellcheck disable=SC2086 # FUZZ_BUILD_ARGS is a list of flags
cargo +nightly fuzz build ${FUZZ_BUILD_ARGS:-} || exit 1

mkdir -p logs
summary="${FUZZ_SUMMARY:-logs/summary.txt}"
failed=()
printf '%-22s %12s %8s %10s %s\n' target execs seconds execs/s result >"$summary"
for t in "${targets[@]}"; do
  mkdir -p "corpus-run/$t"
  log="logs/$t.log"
  # shellcheck disable=SC2086
  if [ -n "${FUZZ_RUNS:-}" ]; then
    limit=(-runs="$FUZZ_RUNS" -seed=1)
  else
    limit=(-max_total_time="$seconds")
  fi
  cargo +nightly fuzz run ${FUZZ_BUILD_ARGS:-} "$t" "corpus-run/$t" "corpus/$t" -- \
    "${limit[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | awk '{s+=$1} END {print s+0}')
  result=ok
  if [ "$rc" -ne 0 ]; then
    result="CRASH (exit $rc, see fuzz/$log and fuzz/artifacts/$t/)"
    failed+=("$t")
  fi
  if [ -n "${FUZZ_RUNS:-}" ]; then
    took=- rate=-
  else
    took=$seconds rate=$((execs / (seconds > 0 ? seconds : 1)))
  fi
  printf '%-22s %12s %8s %10s %s\n' "$t" "$execs" "$took" "$rate" "$result" | tee -a "$summary"
done

if ((${#failed[@]})); then
  echo "fuzz: ${#failed[@]} target(s) crashed: ${failed[*]}" >&2
  exit 1
fi
if [ -n "${FUZZ_RUNS:-}" ]; then
  echo "fuzz: ${#targets[@]} targets ran ${FUZZ_RUNS} inputs each, none crashed (fuzz/$summary)"
else
  echo "fuzz: ${#targets[@]} targets ran ${seconds}s each, none crashed (fuzz/$summary)"
fi
