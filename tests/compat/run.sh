#!/usr/bin/env bash
# Official-SDK compatibility suites of the Maniac gateway.
#
# Builds `maniac` and `fake-upstream`, starts both on free ports with a fresh
# SQLite database, creates a second organization's key, then runs
#   - the Python suite (official `openai` package + pytest), tests/compat/python
#   - the Node suite   (official `openai` npm package + node:test), tests/compat/node
# and exits non-zero if either failed. Installs its own tools on first use:
#   target/compat/venv          python3 -m venv + `pip install "openai[realtime]" pytest`
#   target/compat/node          npm install openai
# (both reused when present; delete them to pick up newer SDK releases).
#
# Environment knobs (all optional):
#   COMPAT_SUITES="python node"   which suites to run
#   COMPAT_SKIP_BUILD=1           use the binaries already in target/debug
#   COMPAT_PYTEST_ARGS="-k foo"   extra pytest arguments
#   COMPAT_KEEP_LOGS=1            keep the temp dir with the server logs
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

SUITES="${COMPAT_SUITES:-python node contract examples replicas}"
COMPAT_DIR="$ROOT/target/compat"
VENV="$COMPAT_DIR/venv"
ST_VENV="$COMPAT_DIR/st-venv"
NODE_DIR="$COMPAT_DIR/node"
BIN="$ROOT/target/debug"
started_at=$(date +%s)

log() { echo "[compat] $*" >&2; }

# ---------------------------------------------------------------- build
if [[ "${COMPAT_SKIP_BUILD:-}" != "1" ]]; then
    log "building maniac and fake-upstream"
    cargo build -q -p maniac-server --bin maniac -p maniac-tests --bin fake-upstream
fi
for b in maniac fake-upstream; do
    [[ -x "$BIN/$b" ]] || { log "missing $BIN/$b"; exit 1; }
done

# ---------------------------------------------------------------- tools
mkdir -p "$COMPAT_DIR"
if [[ " $SUITES " == *" python "* || " $SUITES " == *" replicas "* ]]; then
    if ! "$VENV/bin/python" -c 'import openai, pytest, websockets' 2>/dev/null; then
        log "creating $VENV"
        rm -rf "$VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check "openai[realtime]" pytest
    fi
    log "python: $("$VENV/bin/python" --version 2>&1), openai $("$VENV/bin/python" -c 'import openai; print(openai.__version__)'), pytest $("$VENV/bin/python" -c 'import pytest; print(pytest.__version__)')"
fi
if [[ " $SUITES " == *" node "* ]]; then
    if [[ ! -f "$NODE_DIR/node_modules/openai/package.json" ]]; then
        log "installing the openai npm package into $NODE_DIR"
        mkdir -p "$NODE_DIR"
        cp "$ROOT/tests/compat/node/package.json" "$NODE_DIR/package.json"
        npm install --prefix "$NODE_DIR" openai --no-audit --no-fund --loglevel=error >&2
    fi
    log "node: $(node --version), openai $(node -p "require('$NODE_DIR/node_modules/openai/package.json').version" 2>/dev/null \
        || python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['version'])" "$NODE_DIR/node_modules/openai/package.json")"
fi

if [[ " $SUITES " == *" contract "* ]]; then
    if ! "$ST_VENV/bin/schemathesis" --version >/dev/null 2>&1; then
        log "creating $ST_VENV (schemathesis)"
        rm -rf "$ST_VENV"
        python3 -m venv "$ST_VENV"
        "$ST_VENV/bin/pip" install -q --disable-pip-version-check schemathesis
    fi
    log "$("$ST_VENV/bin/schemathesis" --version)"
fi
if [[ " $SUITES " == *" examples "* ]]; then
    log "building the SDK examples"
    cargo build -q -p maniac-sdk --examples
fi

# ---------------------------------------------------------------- servers
TMP="$(mktemp -d "${TMPDIR:-/tmp}/maniac-compat.XXXXXX")"
UP_PID=""
GW_PID=""
REPLICA_PIDS=""
cleanup() {
    local rc=$?
    for pid in $REPLICA_PIDS $GW_PID $UP_PID; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $REPLICA_PIDS $GW_PID $UP_PID; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ $rc -ne 0 || "${COMPAT_KEEP_LOGS:-}" == "1" ]]; then
        log "server logs kept in $TMP"
    else
        rm -rf "$TMP"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for_line() { # file pattern timeout_s pid
    local file=$1 pattern=$2 deadline=$(( $(date +%s) + $3 )) pid=$4
    until grep -q "$pattern" "$file" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "process $pid exited early; its output:"; cat "$file" >&2 || true; return 1
        fi
        if (( $(date +%s) > deadline )); then
            log "timed out waiting for '$pattern' in $file"; cat "$file" >&2 || true; return 1
        fi
        sleep 0.05
    done
}

export FAKE_ANTHROPIC_KEY="sk-ant-compat-$RANDOM$RANDOM"
"$BIN/fake-upstream" --listen 127.0.0.1:0 >"$TMP/upstream.out" 2>"$TMP/upstream.err" &
UP_PID=$!
wait_for_line "$TMP/upstream.out" '^listening on ' 30 "$UP_PID"
UPSTREAM_URL="$(sed -n 's/^listening on \(http[^ ]*\).*/\1/p' "$TMP/upstream.out" | head -n1)"
ANTHROPIC_URL="$(sed -n 's/^anthropic on \(http[^ ]*\).*/\1/p' "$TMP/upstream.out" | head -n1)"
RESPONSES_URL="$(sed -n 's/^responses on \(http[^ ]*\).*/\1/p' "$TMP/upstream.out" | head -n1)"
log "fake upstreams: chat $UPSTREAM_URL, anthropic $ANTHROPIC_URL, responses $RESPONSES_URL"
# A port nothing listens on: the first target of the failover alias.
DEAD_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"

cat >"$TMP/maniac.toml" <<EOF
[providers.fake]
kind = "openai-chat"
base_url = "$UPSTREAM_URL"
request_timeout_secs = 5
models = ["compat", "meta-llama/llama-3"]

[providers.claude]
kind = "anthropic"
base_url = "$ANTHROPIC_URL"
api_key_env = "FAKE_ANTHROPIC_KEY"
models = ["claude-compat"]

[providers.native]
kind = "openai-responses"
base_url = "$RESPONSES_URL"
models = ["native-compat"]

[providers.down]
kind = "openai-chat"
base_url = "http://127.0.0.1:$DEAD_PORT/v1"
connect_timeout_secs = 2

[routing]                     # fast retries: the suites test outcomes
max_retries = 1
backoff_initial_ms = 10
backoff_max_ms = 50

[models.smart]
targets = ["down/m", "fake/m"]
max_retries = 1
backoff_initial_ms = 10

[background]
workers = 16
lease_ms = 3000
poll_ms = 100
EOF

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
DB_URL="sqlite://$TMP/maniac.db"
MANIAC_LOG="${MANIAC_LOG:-warn}" "$BIN/maniac" serve --listen "127.0.0.1:$PORT" --database-url "$DB_URL" \
    --config "$TMP/maniac.toml" >"$TMP/maniac.out" 2>"$TMP/maniac.err" &
GW_PID=$!
wait_for_line "$TMP/maniac.out" 'listening on http' 60 "$GW_PID"

python3 - "http://127.0.0.1:$PORT/readyz" "$GW_PID" <<'PY' || { log "gateway not ready"; cat "$TMP/maniac.out" "$TMP/maniac.err" >&2 || true; exit 1; }
import os, sys, time, urllib.request
url, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)
    time.sleep(0.05)
sys.exit(1)
PY

# Stdout is not a terminal: the first key is in a file beside the database.
API_KEY="$(cat "$TMP/maniac-initial-key" 2>/dev/null || true)"
[[ -n "$API_KEY" ]] || { log "no $TMP/maniac-initial-key"; cat "$TMP/maniac.out" >&2; exit 1; }
if grep -qF "$API_KEY" "$TMP/maniac.out" "$TMP/maniac.err"; then
    log "the gateway printed its API key"; exit 1
fi
OTHER_KEY="$("$BIN/maniac" keys create --org compat-other --name compat --database-url "$DB_URL" 2>>"$TMP/keys.err" | tail -n1)"
[[ -n "$OTHER_KEY" ]] || { log "maniac keys create printed no key"; cat "$TMP/keys.err" >&2; exit 1; }

export MANIAC_BASE_URL="http://127.0.0.1:$PORT/v1"
export MANIAC_API_KEY="$API_KEY"
export MANIAC_OTHER_KEY="$OTHER_KEY"
log "gateway at $MANIAC_BASE_URL (ready after $(( $(date +%s) - started_at ))s)"

# ---------------------------------------------------------------- suites
failed=()
if [[ " $SUITES " == *" python "* ]]; then
    log "python suite"
    t0=$(date +%s)
    # shellcheck disable=SC2086
    if ! "$VENV/bin/python" -m pytest -q -rxX -p no:cacheprovider "$ROOT/tests/compat/python" ${COMPAT_PYTEST_ARGS:-}; then
        failed+=(python)
    fi
    log "python suite took $(( $(date +%s) - t0 ))s"
fi
if [[ " $SUITES " == *" node "* ]]; then
    log "node suite"
    t0=$(date +%s)
    for suite in test chat; do
        if ! COMPAT_NODE_DIR="$NODE_DIR" node "$ROOT/tests/compat/node/$suite.mjs"; then
            failed+=("node-$suite")
        fi
    done
    log "node suite took $(( $(date +%s) - t0 ))s"
fi

if [[ " $SUITES " == *" contract "* ]]; then
    # Schema-driven contract tests: every operation, generated cases, no
    # 5xx, status codes, content types and bodies as openapi.json says,
    # schema-valid requests accepted, invalid ones rejected, 405s with
    # Allow: every check (schemathesis' default), less the reviewed
    # exceptions of tests/compat/schemathesis.toml. One worker: with two,
    # hypothesis crashed once on CPython 3.11 ("AST constructor recursion
    # depth mismatch", a parser race between threads).
    # ST_EXTRA passes more schemathesis options (local experiments).
    log "contract suite (schemathesis)"
    t0=$(date +%s)
    st_out="$TMP/schemathesis.out"
    if "$ST_VENV/bin/schemathesis" --config-file "$ROOT/tests/compat/schemathesis.toml" \
            run "$ROOT/openapi.json" \
            --url "http://127.0.0.1:$PORT" \
            -H "Authorization: Bearer $API_KEY" \
            --max-examples 120 --seed 20261123 --no-shrink --workers 1 \
            ${ST_EXTRA:-} \
            >"$st_out" 2>&1; then
        generated="$(grep -Eo '[0-9]+ generated' "$st_out" | grep -Eo '[0-9]+' | tail -n1)"
        log "schemathesis: ${generated:-?} cases generated"
        if [[ -z "$generated" || "$generated" -lt 1000 ]]; then
            log "fewer than 1000 generated cases"
            failed+=(contract)
        fi
        grep -E "generated|passed|failed" "$st_out" | tail -n 2
    else
        cat "$st_out"
        failed+=(contract)
    fi
    log "contract suite took $(( $(date +%s) - t0 ))s"
fi
if [[ " $SUITES " == *" examples "* ]]; then
    log "SDK examples"
    t0=$(date +%s)
    for ex in create stream chain background chat; do
        if ! MANIAC_MODEL=fake/m MANIAC_LONG_INPUT="SLOW:100 WORDS:100" \
                "$ROOT/target/debug/examples/$ex"; then
            log "example $ex failed"
            failed+=("example-$ex")
        fi
    done
    log "examples took $(( $(date +%s) - t0 ))s"
fi

if [[ " $SUITES " == *" replicas "* ]]; then
    # The official SDK pointed alternately at two replicas sharing one
    # PostgreSQL database (CI has one on 127.0.0.1:5432, trust auth).
    log "replicas suite (two replicas on PostgreSQL)"
    t0=$(date +%s)
    PG_DB="maniac_compat_$$_$RANDOM"
    if psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $PG_DB" >/dev/null 2>&1; then
        PG_URL="postgres://postgres@127.0.0.1:5432/$PG_DB"
        replica_urls=()
        # On PostgreSQL the first key goes to the working directory.
        mkdir -p "$TMP/replicas"
        for name in a b; do
            rport="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
            (cd "$TMP/replicas" && MANIAC_LOG=warn exec "$BIN/maniac" serve --listen "127.0.0.1:$rport" --database-url "$PG_URL" \
                --config "$TMP/maniac.toml") >"$TMP/replica-$name.out" 2>"$TMP/replica-$name.err" &
            REPLICA_PIDS="$REPLICA_PIDS $!"
            wait_for_line "$TMP/replica-$name.out" 'listening on http' 60 "$!"
            replica_urls+=("http://127.0.0.1:$rport/v1")
        done
        REPLICA_KEY="$(cat "$TMP/replicas/maniac-initial-key" 2>/dev/null || true)"
        if ! MANIAC_REPLICA_A="${replica_urls[0]}" MANIAC_REPLICA_B="${replica_urls[1]}" MANIAC_API_KEY="$REPLICA_KEY" \
                "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$ROOT/tests/compat/python_replicas"; then
            failed+=(replicas)
        fi
        for pid in $REPLICA_PIDS; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
        REPLICA_PIDS=""
        psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
    elif [[ -n "${CI:-}" ]]; then
        log "no PostgreSQL at 127.0.0.1:5432 (required in CI)"
        failed+=(replicas)
    else
        log "skipped: no PostgreSQL at 127.0.0.1:5432"
    fi
    log "replicas suite took $(( $(date +%s) - t0 ))s"
fi

log "total $(( $(date +%s) - started_at ))s"
if (( ${#failed[@]} )); then
    log "FAILED suites: ${failed[*]}"
    exit 1
fi
log "all suites passed"
