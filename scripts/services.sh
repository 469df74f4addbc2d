#!/usr/bin/env bash
# Private PostgreSQL and Redis for `make run` and `make test`.
#
#   scripts/services.sh start   install (from the OS packages) when missing,
#                               start both, print `export` lines to eval
#   scripts/services.sh stop    stop both
#
# Data lives under .data/services/ in the repo (or MOLECULE_SERVICES_DIR).
# Postgres listens on 127.0.0.1:${MOLECULE_PG_PORT:-55432}, Redis on
# 127.0.0.1:${MOLECULE_REDIS_PORT:-56379}; both only on loopback.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
dir=${MOLECULE_SERVICES_DIR:-$here/.data/services}
pg_port=${MOLECULE_PG_PORT:-55432}
redis_port=${MOLECULE_REDIS_PORT:-56379}

log() { echo "services: $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; return 1; fi
}

pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  return 1
}

apt_updated=
apt_install() {
  if ! command -v apt-get >/dev/null; then
    log "cannot install $*: no apt-get on this machine; install it yourself"; return 1
  fi
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq >&2; apt_updated=1; fi
  log "installing $* from the OS packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

ensure_installed() {
  pg_bin >/dev/null || apt_install postgresql
  command -v redis-server >/dev/null || apt_install redis-server
}

# Postgres refuses to run as root; as root we run it as the postgres user
# the package created.
pg_user_run() {
  # From / : the postgres user may not be able to enter the caller's cwd.
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

start_pg() {
  local bin data
  bin=$(pg_bin)
  data=$dir/pg
  if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$dir" 2>/dev/null; then
    # The repo sits where the postgres user cannot reach (e.g. under /root).
    data=/var/tmp/molecule-services-$(echo "$here" | md5sum | cut -c1-8)/pg
  fi
  mkdir -p "$(dirname "$data")"
  if [ ! -s "$data/PG_VERSION" ]; then
    mkdir -p "$data"
    [ "$(id -u)" = 0 ] && chown postgres: "$data" "$(dirname "$data")"
    chmod 700 "$data"
    log "initialising Postgres in $data"
    pg_user_run "$bin/initdb" -D "$data" -U molecule --auth=trust -E UTF8 >/dev/null
  fi
  if ! pg_user_run "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    log "starting Postgres on 127.0.0.1:$pg_port"
    pg_user_run "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start \
      -o "-p $pg_port -k $data -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >/dev/null
  fi
  for _ in $(seq 1 60); do
    "$bin/pg_isready" -h 127.0.0.1 -p "$pg_port" -q && return 0
    sleep 0.5
  done
  log "Postgres did not become ready; see $data/server.log"; return 1
}

start_redis() {
  mkdir -p "$dir/redis"
  if redis-cli -p "$redis_port" ping >/dev/null 2>&1; then return 0; fi
  log "starting Redis on 127.0.0.1:$redis_port"
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$dir/redis" --daemonize yes \
    --pidfile "$dir/redis/redis.pid" --logfile "$dir/redis/redis.log" --save "" --appendonly no >/dev/null
  for _ in $(seq 1 40); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  log "Redis did not become ready; see $dir/redis/redis.log"; return 1
}

case "${1:-start}" in
  start)
    ensure_installed
    mkdir -p "$dir"
    chmod 755 "$dir" 2>/dev/null || true
    start_pg
    start_redis
    echo "export DATABASE_URL='postgres://molecule@127.0.0.1:$pg_port/postgres?sslmode=disable'"
    echo "export REDIS_URL='redis://127.0.0.1:$redis_port/0'"
    ;;
  stop)
    if bin=$(pg_bin); then
      for data in "$dir/pg" /var/tmp/molecule-services-$(echo "$here" | md5sum | cut -c1-8)/pg; do
        [ -d "$data" ] && pg_user_run "$bin/pg_ctl" -D "$data" -m fast stop >/dev/null 2>&1 || true
      done
    fi
    redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
