#!/usr/bin/env bash
# Runs before `npm test` (npm's pretest): the suite needs Redis on 127.0.0.1:6379 and
# Chromium at /usr/bin/chromium. Starts / installs them where this machine allows it, and
# otherwise says exactly what to run. Tests never skip because a service is missing.
set -uo pipefail

REDIS_HOST=127.0.0.1
REDIS_PORT=6379
fail=0

redis_up() { redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping >/dev/null 2>&1; }

if [ -n "${TEST_REDIS_URL:-}" ]; then
  : # the operator points the tests at their own Redis
elif ! command -v redis-cli >/dev/null 2>&1 && ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test setup: installing redis-server (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y redis-server >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y redis-server >/dev/null; }
  fi
fi
if [ -z "${TEST_REDIS_URL:-}" ] && ! redis_up; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "test setup: starting redis-server on $REDIS_HOST:$REDIS_PORT (no persistence)"
    redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" --save "" --appendonly no >/dev/null
    for _ in $(seq 1 50); do redis_up && break; sleep 0.1; done
  fi
  if ! redis_up; then
    echo "test setup: Redis is required on $REDIS_HOST:$REDIS_PORT and is not running."
    echo "  Debian/Ubuntu: sudo apt-get install -y redis-server && redis-server --daemonize yes --save '' --appendonly no"
    echo "  elsewhere: start any Redis 6+ there, or set TEST_REDIS_URL=redis://host:port"
    fail=1
  fi
fi

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test setup: installing chromium (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y chromium >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; }
  fi
  if [ ! -x /usr/bin/chromium ]; then
    echo "test setup: the browser tests need Chromium at /usr/bin/chromium."
    echo "  Debian: sudo apt-get install -y chromium    (Ubuntu's snap chromium does not install there: use Debian's package)"
    fail=1
  fi
fi

exit $fail
