#!/usr/bin/env bash
# A local Apache Ballista cluster for capsnap's fleet tests and benchmarks:
# one scheduler (default port 50050) and two executors, each its own
# process, built in capsnap's workspace (cluster/: Ballista's scheduler and
# executor started through their library entry points, on capsnap's
# DataFusion).
#
#   bench/ballista.sh up       start it (builds the binaries if missing)
#   bench/ballista.sh down     stop it
#   bench/ballista.sh status   show what runs
#
# Then: capsnap query DATASET --engine ballista://localhost:50050 "SQL"
#
# Environment: BALLISTA_PORT (scheduler port, 50050; the executors take
# the next four), BALLISTA_EXECUTORS (2), BALLISTA_DIR (pid files, logs and
# shuffle files; /tmp/capsnap-ballista-$BALLISTA_PORT), BALLISTA_BIN (the
# folder holding capsnap-ballista-scheduler and -executor; default the
# debug build in $CARGO_TARGET_DIR, else target/).
set -euo pipefail
cd "$(dirname "$0")/.."
port=${BALLISTA_PORT:-50050}
executors=${BALLISTA_EXECUTORS:-2}
dir=${BALLISTA_DIR:-/tmp/capsnap-ballista-$port}
target=${CARGO_TARGET_DIR:-target}
bin=${BALLISTA_BIN:-$target/debug}

# Waits until something listens on 127.0.0.1:$1, for at most $2 seconds.
wait_port() {
    local deadline=$((SECONDS + $2))
    until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 0.2
    done
}

running() {
    [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

up() {
    if [[ ! -x $bin/capsnap-ballista-scheduler || ! -x $bin/capsnap-ballista-executor ]]; then
        echo "ballista.sh: building the scheduler and executor (cluster/)" >&2
        # The same command (and so the same features) as the tests: no
        # second build of DataFusion.
        if cargo nextest --version >/dev/null 2>&1; then
            cargo nextest run --workspace --no-run >&2
        else
            cargo test --workspace --no-run >&2
        fi
    fi
    mkdir -p "$dir"
    if running "$dir/scheduler.pid"; then
        echo "ballista.sh: already up (scheduler pid $(cat "$dir/scheduler.pid"), port $port)" >&2
        return 0
    fi
    setsid "$bin/capsnap-ballista-scheduler" --port "$port" \
        >"$dir/scheduler.log" 2>&1 </dev/null &
    echo $! >"$dir/scheduler.pid"
    if ! wait_port "$port" 60; then
        echo "ballista.sh: the scheduler did not listen on port $port; its log:" >&2
        cat "$dir/scheduler.log" >&2
        down
        return 1
    fi
    for i in $(seq "$executors"); do
        local flight=$((port + 2 * i - 1)) grpc=$((port + 2 * i))
        mkdir -p "$dir/executor$i"
        setsid "$bin/capsnap-ballista-executor" --port "$flight" --grpc-port "$grpc" \
            --scheduler-port "$port" --work-dir "$dir/executor$i" \
            >"$dir/executor$i.log" 2>&1 </dev/null &
        echo $! >"$dir/executor$i.pid"
    done
    for i in $(seq "$executors"); do
        if ! wait_port $((port + 2 * i)) 60; then
            echo "ballista.sh: executor $i did not start; its log:" >&2
            cat "$dir/executor$i.log" >&2
            down
            return 1
        fi
    done
    # Executors register with the scheduler as they start; give the last
    # one's registration a moment to land.
    sleep 1
    echo "ballista.sh: up: scheduler on 127.0.0.1:$port, $executors executors (logs in $dir)" >&2
    echo "ballista://127.0.0.1:$port"
}

down() {
    local pids=()
    for f in "$dir"/executor*.pid "$dir/scheduler.pid"; do
        [[ -s $f ]] || continue
        if running "$f"; then
            pids+=("$(cat "$f")")
            kill "$(cat "$f")" 2>/dev/null || true
        fi
        rm -f "$f"
    done
    for p in "${pids[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null || true
    done
    rm -rf "$dir"/executor*/
    echo "ballista.sh: down (${#pids[@]} processes stopped)" >&2
}

status() {
    for f in "$dir/scheduler.pid" "$dir"/executor*.pid; do
        [[ -s $f ]] || continue
        local state=stopped
        running "$f" && state=running
        echo "$(basename "$f" .pid): pid $(cat "$f") $state"
    done
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
*)
    echo "usage: bench/ballista.sh up|down|status" >&2
    exit 2
    ;;
esac
