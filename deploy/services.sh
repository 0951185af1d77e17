#!/usr/bin/env bash
# Start PostgreSQL and Redis on this machine when they do not answer (local runs, demo, CI).
# --or-embedded (make test, make demo): a server that is not installed here is left to pingtree,
# which then starts its embedded one (PINGTREE_EMBEDDED=1: this machine's servers are left alone).
set -u
or_embedded=0
[ "${1:-}" = --or-embedded ] && [ "${PINGTREE_EMBEDDED:-}" != 0 ] && or_embedded=1
[ "$or_embedded" = 1 ] && [ "${PINGTREE_EMBEDDED:-}" = 1 ] && exit 0
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
missing() {
  [ "$or_embedded" = 1 ] && return 0   # pingtree's own line says which servers it uses
  echo "$1 does not answer on $2" >&2; exit 1
}
wait_for() { for _ in $(seq 1 30); do "$1" && return 0; sleep 1; done; return 1; }

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
    wait_for pg_up || missing PostgreSQL 127.0.0.1:5432
  else
    missing PostgreSQL 127.0.0.1:5432
  fi
fi
if ! redis_up; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    wait_for redis_up || missing Redis 127.0.0.1:6379
  else
    missing Redis 127.0.0.1:6379
  fi
fi
