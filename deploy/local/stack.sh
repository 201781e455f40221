#!/usr/bin/env bash
# Local dependencies on loopback: Redis, NATS (JetStream), FerretDB (MongoDB wire protocol) on PostgreSQL, and the OPA binary.
# Reuses whatever already answers; starts the rest from <repo>/.local (pid files there, see stop-stack.sh).
# Idempotent and quick when everything runs. Called by `npm start`, `npm test`, `npm run bench` and .ci/run.
#
# Environment (all optional):
#   REDIS_URL        redis://127.0.0.1:6379
#   NATS_URL         nats://127.0.0.1:4222
#   MONGO_URL        mongodb://127.0.0.1:27017/caracal   (a non-loopback or already answering server is left alone)
#   STORE_POSTGRES_URL postgres://postgres@127.0.0.1:5432/ferretdb   (the PostgreSQL FerretDB stores into)
#   FERRETDB_POOL_MAX_CONNS 80
#   CARACAL_BIN_DIR  $HOME/.cache/caracal-bin   (ferretdb and opa binaries, kept outside the work tree)
#   STACK_WAIT_SECS  30                         (how long to wait for each dependency to answer)
set -euo pipefail

FERRETDB_VERSION=v1.24.2
OPA_VERSION=v1.22.3

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="$REPO/.local"
BIN_DIR="${CARACAL_BIN_DIR:-${HOME:-/root}/.cache/caracal-bin}"
WAIT_SECS="${STACK_WAIT_SECS:-30}"

REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
MONGO_URL="${MONGO_URL:-mongodb://127.0.0.1:27017/caracal}"

die() { echo "stack.sh: $*" >&2; exit 1; }
say() { printf '%-9s %s\n' "$1" "$2"; }

mkdir -p "$LOCAL"
# Serialise concurrent runs (npm start and npm test at the same time) so a dependency is started once.
# Servers started below get `9>&-` so they do not keep holding the lock.
exec 9>"$LOCAL/stack.lock"
flock -w 300 9 || die "another stack.sh still holds $LOCAL/stack.lock after 300 s"

# ---- helpers -------------------------------------------------------------------------------------

# host:port from a URL: strips the scheme, credentials, path/query, and takes the first host of a list.
# Prints "host port"; a missing port gets $2.
hostport() {
  local url="$1" def="$2" rest host port
  case "$url" in
    *+srv://*) die "$url: SRV URLs are not supported here" ;;
  esac
  rest="${url#*://}"
  rest="${rest%%/*}"; rest="${rest%%\?*}"
  rest="${rest##*@}"
  rest="${rest%%,*}"
  if [[ "$rest" == \[*\]* ]]; then           # [::1]:port
    host="${rest%%]*}"; host="${host#[}"
    port="${rest#*]}"; port="${port#:}"
  elif [[ "$rest" == *:* ]]; then
    host="${rest%%:*}"; port="${rest##*:}"
  else
    host="$rest"; port=""
  fi
  [[ -z "$host" || "$host" == localhost ]] && host=127.0.0.1
  [[ -z "$port" ]] && port="$def"
  [[ "$port" =~ ^[0-9]+$ ]] || die "$url: cannot read a port from it"
  echo "$host $port"
}

is_loopback() { [[ "$1" == 127.* || "$1" == ::1 ]]; }

tcp_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# Answers +PONG (or -NOAUTH when a password is set): it is a Redis server.
redis_answers() {
  local reply
  reply="$(timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2; printf 'PING\r\n' >&3; IFS= read -r -t 2 l <&3; printf '%s' \"\$l\"" 2>/dev/null)" || return 1
  [[ "$reply" == +PONG* || "$reply" == -NOAUTH* ]]
}

# Prints the server's INFO line: it is a NATS server.
nats_info() {
  local info
  info="$(timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2; IFS= read -r -t 2 l <&3; printf '%s' \"\$l\"" 2>/dev/null)" || return 1
  [[ "$info" == INFO* ]] || return 1
  printf '%s' "$info"
}

# Pid from a pid file if that process is alive and runs $2 (so a recycled pid is never trusted).
live_pid() {
  local file="$1" name="$2" pid
  [[ -f "$file" ]] || return 1
  pid="$(tr -dc 0-9 <"$file")"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$name" || return 1
  echo "$pid"
}

# wait_for NAME LOG CHECK ARGS...: polls CHECK until it succeeds or WAIT_SECS pass.
wait_for() {
  local name="$1" log="$2"; shift 2
  local deadline=$((SECONDS + WAIT_SECS))
  until "$@"; do
    if ((SECONDS >= deadline)); then
      echo "stack.sh: $name did not answer on $2:$3 within ${WAIT_SECS}s; log: $log" >&2
      [[ -f "$log" ]] && tail -n 15 "$log" | sed 's/^/  | /' >&2
      exit 1
    fi
    sleep 0.2
  done
}

apt_install() {
  [[ "$(id -u)" == 0 ]] || die "$1 is missing and installing it needs root: apt-get install -y $*"
  echo "stack.sh: installing Debian package(s): $*" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "$@" >&2 || die "apt-get install $* failed"
}

# Files for a server: the default port keeps the plain names (redis.pid); another port gets a suffix.
suffix() { [[ "$1" == "$2" ]] && echo "" || echo "-$1"; }

GO=""
find_go() {
  [[ -n "$GO" ]] && return 0
  if command -v go >/dev/null 2>&1; then GO="$(command -v go)"
  elif [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go
  else die "Go toolchain not found (PATH, /usr/local/go/bin/go): it is needed to build ferretdb $FERRETDB_VERSION and opa $OPA_VERSION into $BIN_DIR"
  fi
}

# Copies a module from the Go module cache into a writable temp dir; prints the dir.
module_copy() {
  local mod="$1" dir tmp
  dir="$("$GO" mod download -json "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')"
  [[ -n "$dir" && -d "$dir" ]] || die "go mod download $mod gave no module directory"
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/caracal-build.XXXXXX")"
  cp -r "$dir/." "$tmp/"
  chmod -R u+w "$tmp"
  echo "$tmp"
}

# (Output captured first: `cmd | grep -q` under pipefail fails when grep exits early and cmd gets SIGPIPE.)
ferretdb_ok() {
  local out
  [[ -x "$BIN_DIR/ferretdb" ]] && out="$("$BIN_DIR/ferretdb" --version 2>/dev/null)" || return 1
  [[ "$out" == *"version: $FERRETDB_VERSION"* ]]
}
opa_ok() {
  local out
  [[ -x "$BIN_DIR/opa" ]] && out="$("$BIN_DIR/opa" version 2>/dev/null)" || return 1
  [[ $'\n'"$out"$'\n' == *$'\n'"Version: ${OPA_VERSION#v}"$'\n'* ]]
}

# `go install .../ferretdb@version` builds a binary that panics at start ("Invalid build/version/version.txt"):
# the module zip lacks that file. So build from a copy of the module with the file written in.
# Runs a build step in the background and prints what it builds and the elapsed time every ~10 s, so a
# first start (a few minutes of Go compiling) is never silent. Output of the step goes to its log.
with_progress() {
  local what="$1" log="$2"; shift 2
  local started=$SECONDS
  echo "stack.sh: building $what (first start only; about 1-4 minutes on 2 cores; log: $log)" >&2
  "$@" >"$log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && echo "stack.sh: still building $what ($((SECONDS - started)) s)" >&2
  done
  if ! wait "$pid"; then
    tail -n 20 "$log" | sed 's/^/  | /' >&2
    return 1
  fi
  echo "stack.sh: built $what in $((SECONDS - started)) s" >&2
}

# The binary cache is shared by every checkout on the machine: one build at a time, and a checkout that
# waited for another's build finds the binary there and builds nothing.
lock_bin_cache() {
  mkdir -p "$BIN_DIR"
  exec 8>"$BIN_DIR/.build.lock"
  if ! flock -n 8; then
    echo "stack.sh: another checkout is building into $BIN_DIR; waiting for it" >&2
    flock -w 900 8 || die "$BIN_DIR/.build.lock still held after 900 s"
  fi
}
unlock_bin_cache() { flock -u 8 2>/dev/null || true; exec 8>&-; }

ferretdb_build_steps() {
  local src
  src="$(module_copy "github.com/FerretDB/FerretDB@$FERRETDB_VERSION")" || return 1
  mkdir -p "$src/build/version"
  echo "$FERRETDB_VERSION" >"$src/build/version/version.txt"
  if ! (cd "$src" && CGO_ENABLED=0 "$GO" build -o "$BIN_DIR/ferretdb.tmp.$$" ./cmd/ferretdb); then
    rm -rf "$src" "$BIN_DIR/ferretdb.tmp.$$"
    return 1
  fi
  rm -rf "$src"
  mv -f "$BIN_DIR/ferretdb.tmp.$$" "$BIN_DIR/ferretdb"
}

# `go install .../ferretdb@version` builds a binary that panics at start ("Invalid build/version/version.txt"):
# the module zip lacks that file. So build from a copy of the module with the file written in.
build_ferretdb() {
  find_go
  lock_bin_cache
  if ! ferretdb_ok; then
    with_progress "ferretdb $FERRETDB_VERSION" "$LOCAL/build-ferretdb.log" ferretdb_build_steps || die "building ferretdb $FERRETDB_VERSION failed"
  fi
  unlock_bin_cache
  ferretdb_ok || die "$BIN_DIR/ferretdb was built but does not report $FERRETDB_VERSION"
}

opa_build_steps() {
  if GOBIN="$BIN_DIR" CGO_ENABLED=0 "$GO" install "github.com/open-policy-agent/opa@$OPA_VERSION"; then return 0; fi
  echo "go install opa failed; building from the module source instead"
  local src
  src="$(module_copy "github.com/open-policy-agent/opa@$OPA_VERSION")" || return 1
  if ! (cd "$src" && CGO_ENABLED=0 "$GO" build -o "$BIN_DIR/opa.tmp.$$" .); then
    rm -rf "$src" "$BIN_DIR/opa.tmp.$$"
    return 1
  fi
  rm -rf "$src"
  mv -f "$BIN_DIR/opa.tmp.$$" "$BIN_DIR/opa"
}

build_opa() {
  find_go
  lock_bin_cache
  if ! opa_ok; then
    with_progress "opa $OPA_VERSION" "$LOCAL/build-opa.log" opa_build_steps || die "building opa $OPA_VERSION failed"
  fi
  unlock_bin_cache
  opa_ok || die "$BIN_DIR/opa was built but does not report ${OPA_VERSION#v}"
}

# ---- Redis ---------------------------------------------------------------------------------------

hp="$(hostport "$REDIS_URL" 6379)"; read -r host port <<<"$hp"
if ! is_loopback "$host"; then
  say redis "$host:$port not loopback: left alone"
elif redis_answers "$host" "$port"; then
  say redis "$host:$port reused"
else
  sfx="$(suffix "$port" 6379)"; pidf="$LOCAL/redis$sfx.pid"; log="$LOCAL/redis$sfx.log"
  if tcp_open "$host" "$port"; then die "$host:$port is taken by something that is not Redis (REDIS_URL=$REDIS_URL)"; fi
  if pid="$(live_pid "$pidf" redis-server)"; then
    how="starting (pid $pid)"
  else
    if ! command -v redis-server >/dev/null 2>&1; then
      apt_install redis-server
    fi
    if redis_answers "$host" "$port"; then
      how="reused (started by the Debian package)"
    else
      redis-server --daemonize yes --bind "$host" --port "$port" --save "" --appendonly no \
        --dir "$LOCAL" --pidfile "$pidf" --logfile "$log" >/dev/null 9>&- || die "redis-server did not start; log: $log"
      how="started"
    fi
  fi
  wait_for redis "$log" redis_answers "$host" "$port"
  say redis "$host:$port $how"
fi

# ---- NATS with JetStream -------------------------------------------------------------------------

hp="$(hostport "$NATS_URL" 4222)"; read -r host port <<<"$hp"
if ! is_loopback "$host"; then
  say nats "$host:$port not loopback: left alone"
elif info="$(nats_info "$host" "$port")"; then
  [[ "$info" == *'"jetstream":true'* ]] || echo "stack.sh: warning: the NATS server on $host:$port runs without JetStream" >&2
  say nats "$host:$port reused"
else
  sfx="$(suffix "$port" 4222)"; pidf="$LOCAL/nats$sfx.pid"; log="$LOCAL/nats$sfx.log"
  if tcp_open "$host" "$port"; then die "$host:$port is taken by something that is not NATS (NATS_URL=$NATS_URL)"; fi
  if pid="$(live_pid "$pidf" nats-server)"; then
    how="starting (pid $pid)"
  else
    if ! command -v nats-server >/dev/null 2>&1; then
      apt_install nats-server
    fi
    if nats_info "$host" "$port" >/dev/null; then
      how="reused (started by the Debian package)"
    else
      mkdir -p "$LOCAL/nats$sfx"
      # setsid: a Ctrl-C on `npm start` must not reach the server (Go re-enables SIGINT).
      setsid nohup nats-server -a "$host" -p "$port" -js -sd "$LOCAL/nats$sfx" >>"$log" 2>&1 </dev/null 9>&- &
      echo $! >"$pidf"
      how="started"
    fi
  fi
  wait_for nats "$log" nats_info "$host" "$port" >/dev/null
  say nats "$host:$port $how"
fi

# ---- PostgreSQL (the store behind FerretDB) --------------------------------------------------------

# FerretDB's PostgreSQL backend pushes top-level equalities down to PostgreSQL, where the services add
# GIN indexes that serve them (shared/store/ferret-indexes.ts); the SQLite backend decoded the whole
# collection for every query but `{_id}` and scanned on every update.
PG_URL="${STORE_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/ferretdb}"
# FerretDB's pool: an update holds one connection for its read and needs a second for its write, so the
# updates of all clients together (MONGO_UPDATE_CONCURRENCY per service, default 4) must stay under half of
# it, and all their connections (MONGO_POOL_SIZE, default 10 each) within it; it must also
# stay under PostgreSQL's max_connections (100 by default) minus what else connects.
FERRETDB_POOL="${FERRETDB_POOL_MAX_CONNS:-80}"

pg_parts() {   # postgres://user@host:port/db → "user host port db"
  local rest="${1#*://}" user host port db
  db="${rest#*/}"; db="${db%%\?*}"; rest="${rest%%/*}"
  if [[ "$rest" == *@* ]]; then user="${rest%%@*}"; user="${user%%:*}"; rest="${rest#*@}"; else user=postgres; fi
  host="${rest%%:*}"; port="${rest##*:}"; [[ "$port" == "$rest" ]] && port=5432
  [[ -z "$host" || "$host" == localhost ]] && host=127.0.0.1
  echo "$user $host $port ${db:-ferretdb}"
}
read -r PG_USER PG_HOST PG_PORT PG_DB <<<"$(pg_parts "$PG_URL")"
pg_answers() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2 >/dev/null 2>&1; }
psql_pg() { psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" "$@"; }

# A PostgreSQL server for the store: reuse one that answers; else Debian's packages and a cluster of our
# own ("caracal", trust auth on loopback only) on the wanted port. Its data survives restarts.
ensure_postgres() {
  if ! is_loopback "$PG_HOST"; then say postgres "$PG_HOST:$PG_PORT not loopback: left alone"; return; fi
  if pg_answers; then say postgres "$PG_HOST:$PG_PORT reused"; return; fi
  command -v pg_createcluster >/dev/null 2>&1 && command -v pg_isready >/dev/null 2>&1 || apt_install postgresql
  local ver
  ver="$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1)"
  [[ -n "$ver" ]] || die "postgresql is installed but /usr/lib/postgresql has no version"
  [[ "$(id -u)" == 0 ]] || die "PostgreSQL does not answer on $PG_HOST:$PG_PORT and creating a cluster needs root"
  if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -qx "$ver caracal"; then
    echo "stack.sh: creating PostgreSQL $ver cluster 'caracal' on $PG_HOST:$PG_PORT (trust auth, loopback only)" >&2
    pg_createcluster "$ver" caracal -p "$PG_PORT" -- --auth-local=trust --auth-host=trust >&2 \
      || die "pg_createcluster $ver caracal failed"
    echo "listen_addresses = '$PG_HOST'" >>"/etc/postgresql/$ver/caracal/postgresql.conf"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$ver" caracal start >&2 9>&- || die "pg_ctlcluster $ver caracal start failed"
  wait_for postgres "/var/log/postgresql/postgresql-$ver-caracal.log" pg_answers "$PG_HOST" "$PG_PORT"
  say postgres "$PG_HOST:$PG_PORT cluster caracal ($ver) started"
}

# The database FerretDB keeps its collections in. Custom plans: a prepared statement must not settle on a
# generic plan (a filter over a sequential scan) where the parameters would pick the GIN index. Settings
# on the database apply to connections opened after them: stack.sh sets them before starting FerretDB.
ensure_store_database() {
  if [[ "$(psql_pg -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]]; then
    psql_pg -d postgres -c "CREATE DATABASE \"$PG_DB\"" >/dev/null || die "cannot create database $PG_DB on $PG_HOST:$PG_PORT"
  fi
  psql_pg -d postgres -c "ALTER DATABASE \"$PG_DB\" SET plan_cache_mode = force_custom_plan" >/dev/null \
    || die "cannot set plan_cache_mode on database $PG_DB"
  # Lookups of a few rows never gain from JIT compilation; a misestimate (a table not analysed yet) would
  # otherwise make each one pay for it (measured: 669 ms for a 64-row read at 1M rows).
  psql_pg -d postgres -c "ALTER DATABASE \"$PG_DB\" SET jit = off" >/dev/null || die "cannot set jit on database $PG_DB"
}

# ---- FerretDB (MongoDB wire protocol, PostgreSQL backend) ----------------------------------------

hp="$(hostport "$MONGO_URL" 27017)"; read -r host port <<<"$hp"
sfx="$(suffix "$port" 27017)"; pidf="$LOCAL/ferretdb$sfx.pid"; log="$LOCAL/ferretdb$sfx.log"
# A FerretDB this script started earlier on SQLite (before the store moved to PostgreSQL) is replaced.
if pid="$(live_pid "$pidf" ferretdb)" && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- '--handler=sqlite'; then
  echo "stack.sh: stopping the SQLite FerretDB this script started earlier (pid $pid); the store is PostgreSQL now" >&2
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do [[ -d "/proc/$pid" ]] || break; sleep 0.1; done
  rm -f "$pidf"
fi
if ! is_loopback "$host"; then
  say mongo "$host:$port not loopback: left alone"
elif tcp_open "$host" "$port"; then
  # Reused: its database settings are still brought up to date (they apply to connections opened later).
  if is_loopback "$PG_HOST" && pg_answers; then ensure_store_database; fi
  say mongo "$host:$port reused"
else
  ensure_postgres
  ensure_store_database
  if pid="$(live_pid "$pidf" ferretdb)"; then
    how="ferretdb starting (pid $pid)"
  else
    how="ferretdb $FERRETDB_VERSION on PostgreSQL started"
    if ! ferretdb_ok; then
      build_ferretdb
      how="ferretdb $FERRETDB_VERSION built and started on PostgreSQL"
    fi
    sep='?'; [[ "$PG_URL" == *\?* ]] && sep='&'
    setsid nohup "$BIN_DIR/ferretdb" --handler=postgresql --postgresql-url="${PG_URL}${sep}pool_max_conns=$FERRETDB_POOL" \
      --listen-addr="$host:$port" --telemetry=disable --state-dir="$LOCAL" \
      --debug-addr=127.0.0.1:0 --log-level=WARN >>"$log" 2>&1 </dev/null 9>&- &
    echo $! >"$pidf"
  fi
  wait_for ferretdb "$log" tcp_open "$host" "$port"
  say mongo "$host:$port $how ($PG_HOST:$PG_PORT/$PG_DB, pool $FERRETDB_POOL)"
fi

# ---- OPA binary (run by the policies service, not as a server here) -------------------------------

if opa_ok; then
  say opa "$BIN_DIR/opa $OPA_VERSION reused"
else
  build_opa
  say opa "$BIN_DIR/opa $OPA_VERSION built"
fi
