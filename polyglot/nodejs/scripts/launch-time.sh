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
# The polling loop runs in one python3 process (a curl started every 2 ms would take the CPU the
# app needs on a loaded machine).
python3 - "$build" "$rounds" "$http" <<'PY'
import os, subprocess, sys, time, urllib.request

build, rounds, port = sys.argv[1], int(sys.argv[2]), sys.argv[3]
url = f"http://127.0.0.1:{port}/health"
flags = ["--max-semi-space-size=1", "--optimize-for-size"]  # the recipe's run flags
for _ in range(rounds):
    started = time.perf_counter()
    app = subprocess.Popen(["node", *flags, f"{build}/dist/main.js"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if app.poll() is not None:
            sys.exit("the app exited before /health answered")
        time.sleep(0.002)
    elapsed = time.perf_counter() - started
    # The CPU the app used until then (user + system): what the launch costs on an idle machine.
    fields = open(f"/proc/{app.pid}/stat").read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"launch to /health 200: {elapsed * 1000:.0f} ms, {cpu * 1000:.0f} ms of CPU (load average {load})", flush=True)
    app.terminate()
    app.wait(10)
    time.sleep(1)
PY
