#!/bin/sh
# Rebuilds capture/ebpf/probes.bpf.o, the CO-RE object capsnap embeds
# (capture/src/ebpf/core.rs), from probes.bpf.c and kernel.h.
#
#   capture/ebpf/build.sh            # rebuild in place
#   capture/ebpf/build.sh OUT.o      # build into OUT.o (the currency test)
#
# Building in place also records the clang version in probes.bpf.o.clang.
#
# Needs clang (BPF target) and llvm-strip, plus libbpf's bpf_helpers.h
# (Debian: clang llvm libbpf-dev). The object is committed so that a plain
# `cargo build` needs none of these; CI rebuilds it and checks it is the
# same (capsnap-capture's test ebpf::core::tests::committed_object_is_current).
#
# Reproducible: compiled from this directory with relative paths, DWARF
# stripped (the .BTF and .BTF.ext sections CO-RE needs stay), so the bytes
# depend on the sources and the clang version only, not on the checkout's
# path or the build machine's kernel.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/probes.bpf.o}
case $out in /*) ;; *) out=$(pwd)/$out ;; esac
cd "$here"
tmp=$(mktemp "${TMPDIR:-/tmp}/capsnap-probes.XXXXXX")
trap 'rm -f "$tmp"' EXIT
clang -target bpf -O2 -g -D__TARGET_ARCH_x86 -Wall -Werror \
	-fno-ident -fdebug-prefix-map="$here"=. -c probes.bpf.c -o "$tmp"
llvm-strip -g "$tmp"
mv "$tmp" "$out"
trap - EXIT
# The compiler that built it: another clang version gives other bytes, so
# the currency test compares only with the same one.
if [ $# -eq 0 ]; then
	clang --version | head -n 1 >"$here/probes.bpf.o.clang"
fi
