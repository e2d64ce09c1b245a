#!/usr/bin/env bash
# `capsnap detect` over the kept incident samples, against the same command
# built from an earlier revision (default c16c010, the day issue 10 was
# filed, with its six samples), in one run, alternated. The samples are
# small, so what is measured is what a ticket reader waits for: start-up,
# loading the bundle and planning every detection. Per sample of REV, the
# fastest of RUNS runs of: REV's binary on REV's sample, this checkout's
# binary on the same file, and on this checkout's sample of that name
# (samples are re-collected as tables are added, so they grow); then the
# ratios to REV.
#
#   bench/samples.sh [REV [RUNS [PROFILE]]]   (default c16c010, 5, release)
#
# REV is built from `git archive` in bench/data/, in the same target
# directory (its dependencies are mostly shared), once per profile.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=$(git rev-parse --short "${1:-c16c010}")
runs=${2:-5}
profile=${3:-release}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/capsnap/target}"
out=$([[ $profile == dev ]] && echo debug || echo "$profile")
data=bench/data/samples-$rev
old=$data/capsnap-$profile
if [[ ! -x $old ]]; then
    rm -rf "$data/src" && mkdir -p "$data/src"
    git archive "$rev" | tar -x -C "$data/src"
    cargo build --quiet --profile "$profile" --bin capsnap --manifest-path "$data/src/Cargo.toml"
    cp "$CARGO_TARGET_DIR/$out/capsnap" "$old"
fi
cargo build --quiet --profile "$profile" --bin capsnap
new=$CARGO_TARGET_DIR/$out/capsnap

# ms BIN FILE: wall milliseconds of one detect (exit 0 or 1: found nothing
# or something), or the failure.
ms() {
    local t0 t1 rc=0
    t0=$(date +%s%N)
    "$1" detect "$2" >/dev/null 2>"$data/err" || rc=$?
    t1=$(date +%s%N)
    if ((rc > 1)); then
        echo "$1 detect $2 failed (exit $rc):" >&2
        cat "$data/err" >&2
        exit 1
    fi
    echo $(((t1 - t0) / 1000000))
}
min() { (($1 < $2)) && echo "$1" || echo "$2"; }
# row NAME OLD NEW OWN: the three figures and the two ratios to OLD.
row() {
    printf '%-22s %8d %8d %8d %10.2f %10.2f\n' "$1" "$2" "$3" "$4" \
        "$(awk "BEGIN{print $3 / $2}")" "$(awk "BEGIN{print $4 / $2}")"
}

echo "fastest of $runs runs, ms ($profile): $rev's binary on $rev's sample, this one on it, this one on its own sample"
printf '%-22s %8s %8s %8s %10s %10s\n' sample "$rev" new "new, own" "new/$rev" "own/$rev"
tot_old=0 tot_new=0 tot_own=0
for s in "$data"/src/samples/*.capsnap; do
    name=$(basename "$s")
    own=samples/$name
    [[ -e $own ]] || own=$s
    a=999999 b=999999 c=999999
    for _ in $(seq "$runs"); do
        a=$(min "$a" "$(ms "$old" "$s")")
        b=$(min "$b" "$(ms "$new" "$s")")
        c=$(min "$c" "$(ms "$new" "$own")")
    done
    tot_old=$((tot_old + a)) tot_new=$((tot_new + b)) tot_own=$((tot_own + c))
    row "${name%.capsnap}" "$a" "$b" "$c"
done
row total "$tot_old" "$tot_new" "$tot_own"
