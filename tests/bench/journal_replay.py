#!/usr/bin/env python3
"""Bytes written to disk per event by SQLite's write-ahead log and by its rollback journal,
replaying the store's ingest pattern on schema 6 (docs/BENCHMARKS.md, "A rollback journal,
measured, and left").

Each run makes a database in the given folder with the store's tables and indexes, pages of
--page-size bytes and synchronous=FULL; stores 20 000 events of one room first (as a running
node holds some); then inserts --events more (random 32-byte ids, 266-byte rows: a 330-byte
message without its room and author keys) at increasing timestamps, in commits of the given
size. It prints write_bytes of /proc/self/io divided by the events (a final checkpoint
counted under WAL), beside the 330-byte wire size, and the median and 99th-percentile commit
times. A figure, never a pass or fail.

    tests/bench/journal_replay.py                    # 1, 53, 64 and 1 500 a commit, 2 KiB pages
    tests/bench/journal_replay.py --page-size 4096 --per-commit 53 64
"""

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time

SCHEMA = """
CREATE TABLE rooms (n INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE) STRICT;
CREATE TABLE authors (n INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE) STRICT;
CREATE TABLE events (
    seq INTEGER PRIMARY KEY, id BLOB NOT NULL, room INTEGER NOT NULL, author INTEGER,
    kind INTEGER NOT NULL, ts INTEGER NOT NULL, received_at INTEGER NOT NULL,
    raw BLOB NOT NULL) STRICT;
CREATE UNIQUE INDEX events_room_ts_id ON events(room, ts, id);
CREATE INDEX events_ts ON events(ts);
CREATE INDEX events_state ON events(room, seq) WHERE kind IN (0, 1, 2, 6);
"""
INSERT = ("INSERT INTO events (id, room, author, kind, ts, received_at, raw) "
          "VALUES (?, 1, 1, 3, ?, ?, ?)")
RAW_LEN = 266
WIRE = 330
HELD = 20_000


def written():
    with open("/proc/self/io") as io:
        for line in io:
            if line.startswith("write_bytes"):
                return int(line.split()[1])
    sys.exit("journal_replay: /proc/self/io has no write_bytes (is this Linux?)")


def remove(path):
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass


def run(folder, mode, page_size, per_commit, total):
    path = os.path.join(folder, "replay.db")
    remove(path)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA page_size={page_size}")
    db.execute(f"PRAGMA journal_mode={mode}")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    db.execute("INSERT INTO rooms (id) VALUES (?)", (os.urandom(32),))
    db.execute("INSERT INTO authors (id) VALUES (?)", (os.urandom(32),))
    ts = 1_700_000_000_000 << 16
    db.execute("BEGIN")
    for i in range(HELD):
        ts += 1000
        db.execute(INSERT, (os.urandom(32), ts, i, os.urandom(RAW_LEN)))
    db.execute("COMMIT")
    if mode == "WAL":
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    os.sync()
    before = written()
    times = []
    done = 0
    while done < total:
        n = min(per_commit, total - done)
        start = time.perf_counter()
        db.execute("BEGIN")
        for _ in range(n):
            ts += 1000
            db.execute(INSERT, (os.urandom(32), ts, done, os.urandom(RAW_LEN)))
        db.execute("COMMIT")
        times.append(time.perf_counter() - start)
        done += n
    if mode == "WAL":
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    per_event = (written() - before) / total
    remove(path)
    p99 = sorted(times)[int(len(times) * 0.99)]
    print(f"{mode:9} {per_commit:5} a commit: {per_event:7.0f} B an event = "
          f"{per_event / WIRE:6.2f}x  commit median {1000 * statistics.median(times):6.2f} ms, "
          f"p99 {1000 * p99:6.2f} ms", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--page-size", type=int, default=2048, help="bytes a page (default 2048, the store's)")
    parser.add_argument("--per-commit", type=int, nargs="+", default=[1, 53, 64, 1500],
                        help="events a commit, one run each (default 1 53 64 1500)")
    parser.add_argument("--modes", nargs="+", default=["WAL", "TRUNCATE", "PERSIST"],
                        help="journal modes (default WAL TRUNCATE PERSIST)")
    parser.add_argument("--dir", default=None,
                        help="folder for the scratch database, on the disk to measure (default: a new one in the current folder)")
    args = parser.parse_args()
    folder = args.dir or tempfile.mkdtemp(prefix="journal-replay-", dir=".")
    print(f"SQLite {sqlite3.sqlite_version}, {args.page_size}-byte pages, in {folder}")
    for per_commit in args.per_commit:
        total = 2000 if per_commit == 1 else 30000 if per_commit >= 1000 else 20000
        for mode in args.modes:
            run(folder, mode, args.page_size, per_commit, total)
    if args.dir is None:
        os.rmdir(folder)


if __name__ == "__main__":
    main()
