#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on 127.0.0.1, installing them from Debian's packages and
# starting them when they do not. Used by .ci/run; a developer can run it by hand too.
# The tests connect as postgres over TCP without a password, so loopback gets trust auth (this
# is a throw-away test machine; on any other machine point GEPETTO_TEST_POSTGRES elsewhere).
set -euo pipefail

need_apt=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_apt+=(postgresql)
command -v redis-server >/dev/null || need_apt+=(redis-server)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "services: installing ${need_apt[*]}"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}"
fi

if ! pg_isready -q -h 127.0.0.1; then
    version=$(ls /etc/postgresql | sort -V | tail -n1)
    if [ -z "$version" ]; then
        version=$(ls /usr/lib/postgresql | sort -V | tail -n1)
        pg_createcluster "$version" main
    fi
    hba=/etc/postgresql/$version/main/pg_hba.conf
    if ! grep -q "gepetto-tests" "$hba"; then
        tmp=$(mktemp)
        { echo "host all all 127.0.0.1/32 trust  # gepetto-tests"
          echo "host all all ::1/128 trust  # gepetto-tests"
          cat "$hba"; } >"$tmp"
        cat "$tmp" >"$hba" && rm -f "$tmp"
    fi
    echo "services: starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
fi

if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
    echo "services: starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
    for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1
redis-cli -h 127.0.0.1 ping
