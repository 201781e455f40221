#!/usr/bin/env bash
# Stops the servers that stack.sh started, by the pids in <repo>/.local/*.pid (never by process name).
# Servers that stack.sh reused (no pid file of ours) are left alone.
#   bash deploy/local/stop-stack.sh                  # every pid file: redis, nats, ferretdb (and -<port> variants)
#   bash deploy/local/stop-stack.sh ferretdb-27099   # only .local/ferretdb-27099.pid
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="$REPO/.local"

if (($#)); then
  files=()
  for name in "$@"; do files+=("$LOCAL/${name%.pid}.pid"); done
else
  shopt -s nullglob
  files=("$LOCAL"/*.pid)
fi

for file in "${files[@]}"; do
  name="$(basename "$file" .pid)"
  if [[ ! -f "$file" ]]; then
    echo "$name: no pid file ($file)"
    continue
  fi
  pid="$(tr -dc 0-9 <"$file")"
  # The process must still be the server the file names (redis, nats, ferretdb): a recycled pid is not ours.
  case "$name" in
    redis*) expect=redis-server ;;
    nats*) expect=nats-server ;;
    ferretdb*) expect=ferretdb ;;
    *) expect="$name" ;;
  esac
  if [[ -z "$pid" || ! -r "/proc/$pid/cmdline" ]] || ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$expect"; then
    echo "$name: not running (stale pid file removed)"
    rm -f "$file"
    continue
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    [[ -d "/proc/$pid" ]] || break
    sleep 0.2
  done
  if [[ -d "/proc/$pid" ]]; then
    kill -KILL "$pid" 2>/dev/null || true
    echo "$name: pid $pid killed (did not stop within 10 s)"
  else
    echo "$name: pid $pid stopped"
  fi
  rm -f "$file"
done
