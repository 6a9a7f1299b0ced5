# Shared shell helpers for scripts/demo and scripts/test: a private PostgreSQL cluster and
# waiting for things, always bounded in time.

pg_bin=/usr/lib/postgresql/15/bin

# run_as_pg CMD...: PostgreSQL refuses to run as root; use the postgres user then (from /,
# since it may not enter the current directory).
run_as_pg() {
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# start_local_postgres DIR PORT: initdb on first use, then start on 127.0.0.1:PORT.
start_local_postgres() {
  local dir=$1 port=$2
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    run_as_pg "$pg_bin/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1 || return 1
  fi
  run_as_pg "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
}

stop_local_postgres() {
  local dir=$1
  [ -f "$dir/data/postmaster.pid" ] && run_as_pg "$pg_bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

# wait_for_http URL SECONDS: until URL answers 2xx.
wait_for_http() {
  local url=$1 deadline=$((SECONDS + $2))
  until curl -fs -o /dev/null "$url"; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.2
  done
}

# stop_and_wait PID: SIGTERM, then wait for the process itself (Soketi takes ~5 s).
stop_and_wait() {
  local pid=$1 deadline=$((SECONDS + 15))
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do
    [ $SECONDS -ge $deadline ] && { kill -KILL "$pid" 2>/dev/null; break; }
    sleep 0.2
  done
}
