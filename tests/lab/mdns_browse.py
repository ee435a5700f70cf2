#!/usr/bin/env python3
"""Browse for an mDNS/DNS-SD service type with python-zeroconf, an implementation independent
of the daemon's, and print each resolved service as one JSON line on stdout.

    python3 tests/lab/mdns_browse.py [--ipv4-only] _basis._udp.local. SECONDS

Browses for up to SECONDS seconds, then exits 0. Each line is
    {"name": ..., "server": ..., "port": ..., "addresses": [...], "txt": {key: value}}
with TXT values decoded as UTF-8 (invalid bytes replaced; a key without a value gives "").
A service is printed again only if what it resolves to changes. Exits 1 with a message on
stderr if the zeroconf module is missing, 2 on bad usage.
"""

import json
import queue
import sys
import time

try:
    from zeroconf import IPVersion, ServiceBrowser, ServiceStateChange, Zeroconf
except ImportError:
    print(
        "mdns_browse.py: the python module zeroconf is missing "
        "(install it with: python3 -m pip install zeroconf)",
        file=sys.stderr,
    )
    sys.exit(1)

# How long one resolution may take, and how long to wait before retrying a failed one.
RESOLVE_TIMEOUT_MS = 3000
RETRY_AFTER_S = 1.0


def usage(message):
    print(f"mdns_browse.py: {message}", file=sys.stderr)
    print("usage: mdns_browse.py [--ipv4-only] SERVICE_TYPE SECONDS", file=sys.stderr)
    sys.exit(2)


def parse_args(argv):
    ipv4_only = False
    rest = []
    for arg in argv:
        if arg == "--ipv4-only":
            ipv4_only = True
        elif arg.startswith("--"):
            usage(f"unknown option {arg}")
        else:
            rest.append(arg)
    if len(rest) != 2:
        usage("expected SERVICE_TYPE and SECONDS")
    service_type, seconds = rest
    if not service_type.endswith("."):
        service_type += "."
    try:
        seconds = float(seconds)
    except ValueError:
        usage(f"SECONDS must be a number, not {seconds!r}")
    return service_type, seconds, ipv4_only


def decode(value):
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def describe(info):
    return {
        "name": info.name,
        "server": info.server,
        "port": info.port,
        "addresses": sorted(info.parsed_scoped_addresses()),
        "txt": {decode(k): decode(v) for k, v in sorted(info.properties.items())},
    }


def open_zeroconf(ipv4_only):
    """IPv4 and IPv6 when the host has both; IPv4 only if IPv6 cannot be set up."""
    if not ipv4_only:
        try:
            return Zeroconf(ip_version=IPVersion.All)
        except OSError as err:
            print(f"mdns_browse.py: IPv6 unavailable ({err}); browsing over IPv4 only",
                  file=sys.stderr)
    return Zeroconf(ip_version=IPVersion.V4Only)


def main():
    service_type, seconds, ipv4_only = parse_args(sys.argv[1:])
    deadline = time.monotonic() + seconds
    # Names to resolve, with the earliest time to try: filled by the browser's thread, drained
    # here (resolving inside the browser's callback would block zeroconf's own thread).
    pending = queue.Queue()

    def on_change(zeroconf, service_type, name, state_change):
        if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
            pending.put((name, 0.0))

    zc = open_zeroconf(ipv4_only)
    printed = {}
    browser = None
    try:
        browser = ServiceBrowser(zc, service_type, handlers=[on_change])
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                name, not_before = pending.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            wait = not_before - time.monotonic()
            if wait > 0:
                # Not yet: put it back and sleep a little (other names may be ready).
                pending.put((name, not_before))
                time.sleep(min(wait, 0.2, max(deadline - time.monotonic(), 0)))
                continue
            timeout = int(min(RESOLVE_TIMEOUT_MS, max(deadline - time.monotonic(), 0.1) * 1000))
            info = zc.get_service_info(service_type, name, timeout=timeout)
            if info is None or info.port is None:
                pending.put((name, time.monotonic() + RETRY_AFTER_S))
                continue
            record = describe(info)
            if printed.get(name) != record:
                printed[name] = record
                sys.stdout.write(json.dumps(record) + "\n")
                sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        if browser is not None:
            browser.cancel()
        zc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
