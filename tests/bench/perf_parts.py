#!/usr/bin/env python3
"""Where a node's CPU goes, from a `perf script` of call-graph samples: each sample is put
under the first part whose name is found in its stack (docs/BENCHMARKS.md, "Convergence at
50 nodes"). Prints each part's share of the samples, then the share of samples whose stack
holds each NAME given after the file. A figure, never a pass or fail.

    perf record --call-graph dwarf,32768 -F 400 -p PID,PID,... -o perf.data -- sleep 22
    perf script -i perf.data > perf.txt
    tests/bench/perf_parts.py perf.txt Link::push_batch
"""

import collections
import sys

# In order: a sample goes to the first part any of whose names is in its stack.
PARTS = [
    ("the signature check", ["verify_strict", "curve25519", "sha2::sha512"]),
    ("the store's writer thread (SQLite)", ["WriterState", "basis_store::writer"]),
    ("reads of the store", ["sqlite3", "basis_store"]),
    ("QUIC: quinn, packet encryption, the UDP calls", ["quinn", "ring::", "sendmsg", "recvmmsg", "udp"]),
    ("the link's own code (basis_proto)", ["basis_proto"]),
    ("the driver (basis_net)", ["basis_net"]),
    ("mDNS", ["mdns"]),
    ("tokio and the scheduler", ["tokio", "schedule", "futex", "epoll"]),
]


def samples(lines):
    """Each sample's stack, from `perf script` output: a header line, then one indented
    frame a line, then a blank line."""
    stack = None
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if stack is not None:
                yield stack
            stack = None
        elif line[0] not in " \t":
            stack = []
        elif stack is not None:
            frame = line.strip().split(" ", 1)
            if len(frame) > 1:
                stack.append(frame[1])
    if stack is not None:
        yield stack


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if len(sys.argv) == 2 else 2)
    names = sys.argv[2:]
    counts = collections.Counter()
    holding = collections.Counter()
    total = 0
    with open(sys.argv[1], errors="replace") as f:
        for stack in samples(f):
            total += 1
            joined = " | ".join(stack)
            part = next((name for name, keys in PARTS if any(k in joined for k in keys)), "other")
            counts[part] += 1
            holding.update(name for name in names if name in joined)
    if total == 0:
        sys.exit(f"perf_parts: no samples in {sys.argv[1]}")
    print(f"{total} samples")
    for part, n in counts.most_common():
        print(f"{100 * n / total:5.1f} %  {part}")
    for name in names:
        print(f"{100 * holding[name] / total:5.1f} %  with {name} in the stack")


if __name__ == "__main__":
    main()
