#!/usr/bin/env bash
# Installs the system packages the tests and benchmarks use: real BitTorrent tools from
# Debian for interop tests, a C compiler and git for glommio's build. Idempotent.
#
#   tools/install-deps.sh [--with-rqbit]
#
# --with-rqbit also runs `cargo install rqbit` (not a Debian package; minutes to build on
# 2 cores), which the download benchmark then runs as one more contender.
set -euo pipefail

with_rqbit=0
for arg in "$@"; do
  case "$arg" in
    --with-rqbit) with_rqbit=1 ;;
    *) echo "usage: $0 [--with-rqbit]" >&2; exit 2 ;;
  esac
done

packages=(
  gcc make git pkg-config     # glommio builds a vendored liburing
  mktorrent                   # interop: torrents made by mktorrent
  transmission-cli            # interop: transmission-create / -show; bench: transmission-cli -v
  python3-libtorrent python3  # interop + bench: libtorrent under /usr/bin/python3
  openssl                     # bench: the SHA-1 ceiling
  fio iperf3                  # bench: the disk's O_DIRECT read and loopback TCP ceilings
  aria2                       # interop + bench: aria2c seeds and downloads
  opentracker                 # interop: a real tracker on 127.0.0.1
  iproute2                    # interop: network namespaces for clients that skip loopback peers
  time                        # bench: /usr/bin/time, CPU and peak RSS of each downloader
  qbittorrent-nox             # bench S6: another seedbox daemon, through its WebAPI
  transmission-daemon         # bench S6: another seedbox daemon, through its RPC
  util-linux                  # tests/accept_backoff.rs: prlimit lowers a running daemon's fd limit
  tmux                        # tests/top.rs: `ccbt-uring top` in a real terminal
  curl                        # tests/remote_http.rs, tests/top.rs: a real HTTP client
  systemd                     # tests/systemd_unit.rs: `systemd-analyze verify` (no service is started)
  transmission-common         # api_transmission: Transmission's web UI, served from /usr/share/transmission/web
  chromium chromium-driver    # api_transmission: the web UI in a headless browser
  python3-venv                # the venv of PyPI test drivers (selenium, qbittorrent-api)
  prometheus                  # tests/api_metrics.rs: a real Prometheus scrapes /metrics; promtool
  libssl-dev                  # build: OpenSSL for https:// .torrent URLs (both APIs)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ((with_rqbit)) && ! command -v rqbit >/dev/null && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/rqbit" ]; then
  cargo install rqbit --locked
fi

# cargo-fuzz, for the fuzz targets in fuzz/ (they need the nightly toolchain, which the
# machine image carries; without it there is nothing to run them with). About 1.5 minutes
# to build on 2 cores, once per machine.
if rustup toolchain list 2>/dev/null | grep -q '^nightly' && ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version '^0.13'
fi

# The PyPI packages the tests drive, in one venv of Debian's python3 under target/ (the
# tests look for target/venv/bin/python, see tests/common/venv.rs): qbittorrent-api for
# the WebAPI test, selenium for the web UI in Chromium. Re-run after `cargo clean`. pip runs
# as `python -m pip`: a venv copied from another tree keeps pip scripts that name the old one.
venv="$(cd "$(dirname "$0")/.." && pwd)/target/venv"
if ! "$venv/bin/python" -c "import qbittorrentapi, selenium" 2>/dev/null; then
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "qbittorrent-api==2026.10.1" "selenium>=4.20,<5"
fi
