#!/usr/bin/env bash
# The fleet workflow over NODES generated node bundles (examples/gen_fleet.rs,
# default 200): export time and dataset size, then a fleet query (TIME_WAIT
# sockets and conntrack use per node) and the full `detect`, on the bundles
# (DataFusion here, unpacking every bundle), on the dataset with DataFusion
# here, and on the dataset with a local Ballista cluster (a scheduler and
# two executors, bench/ballista.sh). Prints the fastest of RUNS runs of each.
#
#   bench/fleet.sh [NODES [RUNS]]      (PROFILE=debug to use the debug build)
#
# Needs GNU time (apt-get install time).
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=${1:-200}
runs=${2:-3}
profile=${PROFILE:-release}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/capsnap/target}"
if [[ $profile == release ]]; then
    cargo build --release --quiet --workspace --bins --examples
fi
bin=$CARGO_TARGET_DIR/$profile
capsnap=$bin/capsnap
data=bench/data/fleet-$nodes
if [[ ! -e $data/bundles.done ]]; then
    rm -rf "$data"
    mkdir -p "$data/bundles"
    "$bin/examples/gen_fleet" "$data/bundles" "$nodes"
    touch "$data/bundles.done"
fi
bundles="$data/bundles/*.capsnap"
cat $data/bundles/*.capsnap >/dev/null   # into page cache

export BALLISTA_PORT=${BALLISTA_PORT:-50050} BALLISTA_BIN=$bin
cluster=0
cleanup() {
    ((cluster)) && bash bench/ballista.sh down || true
}
trap cleanup EXIT

# best SECONDS MAXRSS_KB of running "$@" RUNS times (exit 0 or 1 accepted).
best() {
    local best=999999 mem=0 secs kb rc
    for _ in $(seq "$runs"); do
        set +e
        /usr/bin/time -f "%e %M" -o "$data/time" "$@" >"$data/out" 2>"$data/err"
        rc=$?
        set -e
        if ((rc > 1)); then
            cat "$data/err" >&2
            echo "failed (exit $rc): $*" >&2
            exit 1
        fi
        read -r secs kb < <(tail -1 "$data/time")
        if awk "BEGIN{exit !($secs < $best)}"; then best=$secs; mem=$kb; fi
    done
    echo "$best $mem"
}

rm -rf "$data/dataset"
/usr/bin/time -f "%e %M" -o "$data/time" "$capsnap" export $bundles --to "$data/dataset" 2>"$data/export.err"
read -r export_secs export_kb < <(tail -1 "$data/time")
echo "fleet.sh: export $export_secs s" >&2
bundle_bytes=$(cat $data/bundles/*.capsnap | wc -c)
dataset_bytes=$(find "$data/dataset" -name '*.parquet' -printf '%s\n' | awk '{s+=$1} END {print s+0}')
files=$(find "$data/dataset" -name '*.parquet' | wc -l)
rows=$("$capsnap" query "$data/dataset" "select (select count(*) from sockets) + (select count(*) from conntrack) + (select count(*) from packets) + (select count(*) from events) + (select count(*) from fds) as n" --format csv | tail -1)

fleet_query="select s.host, count(*) filter (where s.state = 'TIME_WAIT') as time_wait,
    max(c.count_now) as conntrack, max(c.max_entries) as conntrack_max,
    round(100.0 * max(c.count_now) / max(c.max_entries), 1) as conntrack_pct
  from sockets s join (
    select host,
      max(case when name = 'net.netfilter.nf_conntrack_count' then cast(value as bigint) end) as count_now,
      max(case when name = 'net.netfilter.nf_conntrack_max' then cast(value as bigint) end) as max_entries
    from sysctls where netns = 'host' group by host) c on c.host = s.host
  group by s.host order by time_wait desc, s.host"

read -r q_bundles q_bundles_kb < <(best "$capsnap" query $bundles "$fleet_query" --format csv)
echo "fleet.sh: query on the bundles $q_bundles s" >&2
cp "$data/out" "$data/query.bundles.csv"
read -r q_local q_local_kb < <(best "$capsnap" query "$data/dataset" "$fleet_query" --format csv)
echo "fleet.sh: query on the dataset $q_local s" >&2
cp "$data/out" "$data/query.local.csv"
read -r d_bundles d_bundles_kb < <(best "$capsnap" detect $bundles --format json)
echo "fleet.sh: detect on the bundles $d_bundles s" >&2
cp "$data/out" "$data/detect.bundles.json"
read -r d_local d_local_kb < <(best "$capsnap" detect "$data/dataset" --format json)
echo "fleet.sh: detect on the dataset $d_local s" >&2
cp "$data/out" "$data/detect.local.json"

engine=$(bash bench/ballista.sh up)
cluster=1
read -r q_ballista q_ballista_kb < <(best "$capsnap" query "$data/dataset" "$fleet_query" --format csv --engine "$engine")
echo "fleet.sh: query on Ballista $q_ballista s" >&2
cp "$data/out" "$data/query.ballista.csv"
read -r d_ballista d_ballista_kb < <(best "$capsnap" detect "$data/dataset" --format json --engine "$engine")
echo "fleet.sh: detect on Ballista $d_ballista s" >&2
cp "$data/out" "$data/detect.ballista.json"
bash bench/ballista.sh down
cluster=0

# same A B: byte for byte; else the same rows in another order (rows that
# tie on a detection's ORDER BY come in any order, here and on Ballista).
same() {
    if cmp -s "$1" "$2"; then
        echo same
    elif python3 - "$1" "$2" <<'PY'; then
import json, sys
def norm(path):
    text = open(path).read()
    try:
        doc = json.loads(text)
    except ValueError:
        return sorted(text.splitlines())
    def canon(v):
        if isinstance(v, list):
            return sorted((canon(x) for x in v), key=lambda x: json.dumps(x, sort_keys=True))
        if isinstance(v, dict):
            return {k: canon(x) for k, x in v.items()}
        return v
    return canon(doc)
sys.exit(0 if norm(sys.argv[1]) == norm(sys.argv[2]) else 1)
PY
        echo "same rows, another order"
    else
        echo DIFFERENT
    fi
}
echo
echo "fleet: $nodes generated bundles, $((bundle_bytes / 1024)) KiB of bundles ($profile build, $(nproc) cores)"
printf '%-34s %8.2f s  %6d MiB peak\n' "export" "$export_secs" $((export_kb / 1024))
printf '%-34s %8d KiB in %d files (%s rows in sockets, conntrack, packets, events, fds)\n' "dataset" $((dataset_bytes / 1024)) "$files" "$rows"
echo
printf '%-34s %10s %12s %12s\n' "" "bundles" "dataset" "dataset on"
printf '%-34s %10s %12s %12s\n' "" "(local)" "(local)" "Ballista 2x"
printf '%-34s %9.2fs %11.2fs %11.2fs\n' "fleet query (TIME_WAIT, conntrack)" "$q_bundles" "$q_local" "$q_ballista"
printf '%-34s %9.2fs %11.2fs %11.2fs\n' "detect (all detections)" "$d_bundles" "$d_local" "$d_ballista"
printf '%-34s %8dM %11dM %11dM\n' "  peak memory of capsnap (detect)" $((d_bundles_kb / 1024)) $((d_local_kb / 1024)) $((d_ballista_kb / 1024))
echo
echo "answers: query dataset vs bundles: $(same "$data/query.local.csv" "$data/query.bundles.csv"), Ballista vs local: $(same "$data/query.ballista.csv" "$data/query.local.csv")"
echo "         detect dataset vs bundles: $(same "$data/detect.local.json" "$data/detect.bundles.json"), Ballista vs local: $(same "$data/detect.ballista.json" "$data/detect.local.json")"
echo "findings: $(python3 -c 'import json,sys,collections; c=collections.Counter(o["detection"] for o in json.load(open(sys.argv[1])) if o["status"]=="found"); print(", ".join(f"{k} {v}" for k,v in sorted(c.items())))' "$data/detect.local.json")"
