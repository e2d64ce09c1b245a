#!/usr/bin/env bash
# Builds each hostile input of issue #10 and runs capsnap on it with the
# default memory limit, printing one line per input: peak RSS (GNU time's
# maximum resident set size), exit code, wall time, and the first line of
# stderr. Every peak must stay under 1 GiB, and no run may end in a signal
# (exit 134 abort, 137 OOM kill) or pass its time bound (exit 124).
#
#   bench/hostile.sh [CAPSNAP [WORKDIR]]
#       CAPSNAP  the binary (default: $CARGO_TARGET_DIR/release/capsnap,
#                built if missing)
#       WORKDIR  where inputs are built (default bench/data/hostile; needs
#                about 3.2 GB free for the three 1 GB text tables, removed
#                after their run)
#
# Needs GNU time (apt-get install time), python3 and zstd.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/capsnap/target}"
bin=${1:-$CARGO_TARGET_DIR/release/capsnap}
if [[ ! -x $bin ]]; then
    cargo build --release --quiet --bin capsnap --example gen_capture || exit 2
fi
gen=$CARGO_TARGET_DIR/release/examples/gen_capture
[[ -x $gen ]] || gen=$CARGO_TARGET_DIR/debug/examples/gen_capture
[[ -x $gen ]] || { cargo build --release --quiet --example gen_capture && gen=$CARGO_TARGET_DIR/release/examples/gen_capture; }
w=${2:-bench/data/hostile}
mkdir -p "$w"
w=$(cd "$w" && pwd)
worst=0

# run NAME TIMEOUT_S CMD... : one line of figures.
run() {
    local name=$1 limit=$2
    shift 2
    /usr/bin/time -f "%M %e" -o "$w/time" timeout "$limit" "$@" >"$w/out" 2>"$w/err"
    local rc=$?
    read -r kb secs <"$w/time" 2>/dev/null || { kb=0 secs=?; }
    # GNU time writes "Command exited with non-zero status N" first.
    kb=$(grep -Eo '^[0-9]+ [0-9.]+$' "$w/time" | cut -d' ' -f1)
    secs=$(grep -Eo '^[0-9]+ [0-9.]+$' "$w/time" | cut -d' ' -f2)
    local mib=$(( ${kb:-0} / 1024 ))
    ((mib > worst)) && worst=$mib
    printf '%-44s %6s MiB  exit %-3s %7s s  %s\n' "$name" "$mib" "$rc" "$secs" \
        "$(grep -v '^$' "$w/err" | head -1 | cut -c1-110)"
}

py() { python3 -c "$@"; }

echo "capsnap: $bin"
printf '%-44s %10s  %-8s %9s  %s\n' input "peak RSS" exit wall "first line of stderr"

# 4. events.jsonl of unterminated records, 16 MB (quadratic before).
mkdir -p "$w/events/ebpf"
py "open('$w/events/ebpf/events.jsonl','w').write('{\"event\":\"x\",\"a\":[\"\n' * ((16<<20)//20))"
run "4 events.jsonl 16 MB unterminated" 300 "$bin" query "$w/events" "select count(*) from events"

# 5a. cross join on a 100k-packet capture.
[[ -s $w/100k.pcap ]] || "$gen" "$w/100k.pcap" 100000 >/dev/null
run "5a cross join, 100k packets (table)" 600 "$bin" query "$w/100k.pcap" \
    "select a.frame, b.frame from packets a, packets b"
run "5a cross join, 100k packets (count)" 600 "$bin" query "$w/100k.pcap" \
    "select count(*) from packets a, packets b where a.src_port = b.dst_port"
run "5a self join order by, 100k packets (csv)" 600 "$bin" query --format csv "$w/100k.pcap" \
    "select a.frame, b.ts from packets a join packets b on a.src_ip = b.src_ip order by b.ts"

# 5b. a pcap record header claiming 4 GiB.
py "
import struct
hdr = struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 0xffffffff, 1)
rec = struct.pack('<IIII', 1, 0, 0xffffffff, 0xffffffff) + b'\0' * 64
open('$w/claim4g.pcap','wb').write(hdr + rec)"
run "5b pcap record claiming 4 GiB" 120 "$bin" query "$w/claim4g.pcap" "select count(*) from packets"

# 5c. a 40 MB pcapng of 300,000 small sections.
py "
import struct
def block(t, body):
    n = 12 + len(body)
    return struct.pack('<II', t, n) + body + struct.pack('<I', n)
shb = block(0x0a0d0d0a, struct.pack('<IHHq', 0x1a2b3c4d, 1, 0, -1))
idb = block(1, struct.pack('<HHI', 1, 0, 65535))
epb = block(6, struct.pack('<IIIII', 0, 0, 1, 60, 60) + b'\x45' * 60)
open('$w/sections.pcapng','wb').write((shb + idb + epb) * 300000)"
run "5c pcapng of 300,000 sections (40 MB)" 300 "$bin" query "$w/sections.pcapng" "select count(*) from packets"

# 5d. 100,000 one-line sysctl files.
if [[ ! -d $w/sysctl/proc/sys/net/x ]]; then
    py "
import os
d = '$w/sysctl/proc/sys/net'
for i in range(100000):
    p = f'{d}/x/{i // 1000}'
    os.makedirs(p, exist_ok=True)
    open(f'{p}/v{i}', 'w').write(f'{i}\n')"
fi
run "5d 100,000 one-line sysctl files" 600 "$bin" query "$w/sysctl" "select count(*) from sysctls"

# 5e. three 1 GB text tables.
mkdir -p "$w/big/netns/host/proc/net"
for f in tcp snmp sockstat; do
    [[ -s $w/big/netns/host/proc/net/$f ]] ||
        py "
import sys
line = b'  0: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n'
with open('$w/big/netns/host/proc/net/$f', 'wb') as out:
    out.write(b'  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n')
    for _ in range((1 << 30) // len(line) // 1024):
        out.write(line * 1024)"
done
run "5e three 1 GB text tables" 600 "$bin" query "$w/big" "select count(*) from sockets"
rm -rf "$w/big"

# 5f. a 20 GB GNU long-name record in a bundle (compresses to a few MB).
if [[ ! -s $w/longname.capsnap ]]; then
    py "
import hashlib, io, json, sys, tarfile
m = json.dumps({'format_version': 1, 'host': 'n', 'members': [{'path': 'a', 'size': 1 << 34, 'sha256': '00'}]}).encode()
t = tarfile.TarInfo('manifest.json'); t.size = len(m)
b = io.BytesIO(); tf = tarfile.open(fileobj=b, mode='w', format=tarfile.GNU_FORMAT); tf.addfile(t, io.BytesIO(m)); tf.close()
sys.stdout.buffer.write(b.getvalue()[:512 + (len(m) + 511) // 512 * 512])
size = 20 << 30
h = tarfile.TarInfo('././@LongLink'); h.type = tarfile.GNUTYPE_LONGNAME; h.size = size
sys.stdout.buffer.write(h.tobuf(format=tarfile.GNU_FORMAT))
z = b'a' * (1 << 20)
for _ in range(size >> 20):
    sys.stdout.buffer.write(z)" | zstd -q -1 -T2 -o "$w/longname.capsnap"
fi
run "5f bundle with a 20 GB long-name record" 300 "$bin" query "$w/longname.capsnap" "select 1"

# 6. a WHERE of 5,000 OR terms.
py "print('select count(*) from packets where ' + ' or '.join(f'src_port = {i}' for i in range(5000)))" >"$w/or5000.sql"
run "6 WHERE with 5,000 OR terms" 300 "$bin" query "$w/100k.pcap" -f "$w/or5000.sql"

# 7. a FIFO as input.
rm -f "$w/fifo.pcap" && mkfifo "$w/fifo.pcap"
run "7 a FIFO as input" 20 "$bin" query "$w/fifo.pcap" "select 1"

echo "worst peak: $worst MiB"
((worst < 1024))
