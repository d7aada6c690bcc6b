#!/usr/bin/env bash
# Launch to /health 200 of a built nodejs app (docs/polyglot/nodejs.md, Figures), measured as
# docs/polyglot/golang.md measures Go's: start dist/main.js with the flags and the environment the
# launcher gives the `nodejs` service, poll /health every 2 ms, stop it; N rounds, one line each
# with the load average beside it. The stack's own nodejs must be stopped first (same ports):
#
#   export DEVSTACK_STATE_DIR=.devstack DEVSTACK_PORT_OFFSET=0
#   ./devstack up --profile standard+nodejs && ./devstack stop nodejs
#   polyglot/nodejs/scripts/launch-time.sh ~/.cache/devstack/polyglot/nodejs/<key> 5
#   ./devstack start nodejs
#
# Each curl attempt costs a few milliseconds, so a figure can be late by about one attempt.
set -euo pipefail
build=${1:?usage: launch-time.sh BUILD_FOLDER [ROUNDS]}
rounds=${2:-5}
state=${DEVSTACK_STATE_DIR:-.devstack}
offset=${DEVSTACK_PORT_OFFSET:-0}
http=$((8003 + offset))
export DEVSTACK_PORT_OFFSET=$offset \
  DEVSTACK_VAULT_ROLE_ID_FILE="$state/approle/nodejs/role-id" \
  DEVSTACK_VAULT_SECRET_ID_FILE="$state/approle/nodejs/secret-id" \
  DEVSTACK_CA_FILE="$state/ca/ca-chain.pem" \
  DEVSTACK_API_HTTP_PORT=$http \
  DEVSTACK_API_HTTPS_PORT=$((8446 + offset)) \
  DEVSTACK_API_TLS_CERT_FILE="$state/nodejs/tls/cert.pem" \
  DEVSTACK_API_TLS_KEY_FILE="$state/nodejs/tls/key.pem"
if curl -s -o /dev/null "http://127.0.0.1:$http/health"; then
  echo "port $http answers already: stop the stack's nodejs first (devstack stop nodejs)" >&2
  exit 1
fi
for ((i = 1; i <= rounds; i++)); do
  started=$(date +%s%N)
  node --max-semi-space-size=1 --optimize-for-size "$build/dist/main.js" >/dev/null 2>&1 &
  app=$!
  until curl -s -o /dev/null -m 1 -f "http://127.0.0.1:$http/health"; do
    kill -0 "$app" 2>/dev/null || { echo "the app exited before /health answered" >&2; exit 1; }
    sleep 0.002
  done
  ended=$(date +%s%N)
  echo "launch to /health 200: $(((ended - started) / 1000000)) ms (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  kill "$app"
  wait "$app" 2>/dev/null || true
  sleep 1
done
