#!/usr/bin/env bash
# Set up Témoin from a fresh Debian machine and run it: `./dev.sh demo` or `./dev.sh test`.
# Idempotent: a second run reuses the virtual environment and installs only what changed.
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"

step() { echo "dev.sh: $*" >&2; }  # one line per step: the set-up says what it is doing

apt_install() {  # apt_install PKG... : Debian packages, only when missing
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    echo "dev.sh: please install ${missing[*]} (no apt-get here)" >&2; return 1
  fi
  step "installing ${missing[*]} (Debian packages)"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
}

venv() {
  if [ ! -x .venv/bin/python ]; then
    step "creating the virtual environment (.venv)"
    "$PY" -m venv .venv 2>/dev/null || { apt_install python3-venv && "$PY" -m venv .venv; }
  fi
  local stamp=.venv/.installed
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    step "upgrading pip"
    .venv/bin/python -m pip install -q --upgrade pip
    step "installing Python packages (a few minutes the first time)"
    .venv/bin/python -m pip install -q -e '.[test]'
    touch "$stamp"
  else
    step "Python packages up to date"
  fi
}

postgres_up() {  # the test suite runs on PostgreSQL too; make sure one answers on 127.0.0.1:5432
  local url=${TEMOIN_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
  export TEMOIN_TEST_POSTGRES_URL=$url
  .venv/bin/python - "$url" <<'PY' && return 0
import sys, psycopg
try:
    psycopg.connect(sys.argv[1], connect_timeout=3).close()
except Exception:
    sys.exit(1)
PY
  step "starting a local PostgreSQL for the tests"
  if ! command -v pg_ctlcluster >/dev/null; then apt_install postgresql || true; fi
  if command -v pg_ctlcluster >/dev/null; then
    local version; version=$(ls /etc/postgresql | sort -V | tail -n 1)
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
    sleep 2
  fi
  # Not reachable still: the PostgreSQL tests will fail loudly and say why.
}

nats_up() {  # the events-across-nodes tests need a NATS server with JetStream; make sure one answers
  local url=${TEMOIN_TEST_NATS_URL:-nats://127.0.0.1:4222}
  export TEMOIN_TEST_NATS_URL=$url
  local hostport=${url#nats://}; hostport=${hostport%%,*}
  local host=${hostport%%:*} port=${hostport##*:}
  (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && return 0
  step "starting a local NATS server with JetStream for the tests"
  command -v nats-server >/dev/null || apt_install nats-server || true
  if command -v nats-server >/dev/null; then
    local store=${TMPDIR:-/tmp}/temoin-test-nats
    mkdir -p "$store"
    nohup nats-server -js -a "$host" -p "$port" -sd "$store" >"$store/nats-server.log" 2>&1 &
    sleep 1
  fi
  # Not reachable still: the events tests fail loudly and say why.
}

case "${1:-}" in
  demo)
    venv
    shift
    step "starting the demo (temoin demo $*)"
    exec .venv/bin/temoin demo "$@"
    ;;
  test)
    venv
    # rsyslog: the journal witness tests start a real rsyslogd; openssl: the timestamp tests run a real TSA
    step "checking chromium ffmpeg rsyslog openssl (the browser, media, witness and timestamp tests)"
    apt_install chromium ffmpeg rsyslog openssl
    # GStreamer's WebRTC stack, driven from Debian's Python: an independent WHIP publisher (tests/test_live_whip.py)
    step "checking GStreamer's WebRTC stack (the WHIP interoperability test)"
    apt_install python3-gi gir1.2-gst-plugins-bad-1.0 gstreamer1.0-plugins-bad gstreamer1.0-plugins-good \
      gstreamer1.0-plugins-ugly gstreamer1.0-nice
    postgres_up
    nats_up
    shift
    # Two processes by default: much of a test's time is spent waiting (servers starting, a browser, subprocesses),
    # so two overlap well even on two cores. A file's tests stay together, in order, in one process.
    # TEMOIN_TEST_WORKERS=0 runs everything in this process.
    workers=${TEMOIN_TEST_WORKERS:-2}
    step "running the tests (pytest -n $workers --dist loadfile $*)"
    exec .venv/bin/python -m pytest -n "$workers" --dist loadfile "$@"
    ;;
  *)
    echo "usage: ./dev.sh demo | ./dev.sh test [pytest args]" >&2
    exit 2
    ;;
esac
