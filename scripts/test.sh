#!/usr/bin/env bash
# Sets up everything the test suite needs on a fresh Debian 12 machine, then runs the gates:
# ruff (lint and format), mypy --strict on the package, and pytest (warnings are errors). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the FFmpeg CLI (test fixtures, upscaled clips), a small RTSP relay
# (reconnect tests), PostgreSQL and Mosquitto (servers the storage and alert tests start
# themselves), Chromium (the web UI's browser tests drive it through Playwright; no browser
# is ever downloaded by Playwright) and Prometheus, for its `promtool check metrics` on a live
# scrape of /metrics. Installed only when missing.
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v rtsp-server-perl >/dev/null || need+=(rtsp-server-perl)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql)
command -v mosquitto >/dev/null || need+=(mosquitto)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v promtool >/dev/null || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[bench,cluster,dev]'

echo "== ruff"; .venv/bin/ruff check vigil tests bench
.venv/bin/ruff format --check vigil tests bench scripts
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/python -m pytest "$@"
