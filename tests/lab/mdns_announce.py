#!/usr/bin/env python3
"""Announce a `_basis._udp.local.` service with python-zeroconf until killed: the other half of
the lab's mDNS check (see mdns_browse.py).

    python3 tests/lab/mdns_announce.py [--ipv4-only] NAME PORT [KEY=VALUE...]

Registers NAME._basis._udp.local. on NAME.local. at PORT with the given TXT entries and the
host's non-loopback addresses, prints "registered" on stdout once done, then runs until
SIGTERM or SIGINT (which unregister the service first) or SIGKILL. Exits 1 with a message on
stderr if the zeroconf module is missing, 2 on bad usage.
"""

import ipaddress
import signal
import sys
import threading

try:
    import ifaddr
    from zeroconf import IPVersion, ServiceInfo, Zeroconf
except ImportError:
    print(
        "mdns_announce.py: the python module zeroconf is missing "
        "(install it with: python3 -m pip install zeroconf)",
        file=sys.stderr,
    )
    sys.exit(1)

SERVICE_TYPE = "_basis._udp.local."


def usage(message):
    print(f"mdns_announce.py: {message}", file=sys.stderr)
    print("usage: mdns_announce.py [--ipv4-only] NAME PORT [KEY=VALUE...]", file=sys.stderr)
    sys.exit(2)


def local_addresses(ipv4_only):
    """Packed addresses of every non-loopback interface (link-local IPv6 included)."""
    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, tuple):
                if ipv4_only:
                    continue
                addr = ipaddress.IPv6Address(ip.ip[0].split("%")[0])
            else:
                addr = ipaddress.IPv4Address(ip.ip)
            if not addr.is_loopback:
                found.append(addr.packed)
    return found


def main():
    args = sys.argv[1:]
    ipv4_only = "--ipv4-only" in args
    args = [a for a in args if a != "--ipv4-only"]
    if len(args) < 2:
        usage("expected NAME and PORT")
    name, port = args[0], args[1]
    try:
        port = int(port)
    except ValueError:
        usage(f"PORT must be a number, not {port!r}")
    properties = {}
    for entry in args[2:]:
        key, sep, value = entry.partition("=")
        if not key:
            usage(f"bad TXT entry {entry!r}")
        properties[key] = value if sep else None

    zc = Zeroconf(ip_version=IPVersion.V4Only if ipv4_only else IPVersion.All)
    info = ServiceInfo(
        SERVICE_TYPE,
        f"{name}.{SERVICE_TYPE}",
        port=port,
        properties=properties,
        server=f"{name}.local.",
        addresses=local_addresses(ipv4_only),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        zc.register_service(info)
        print("registered", flush=True)
        while not stop.wait(1.0):
            pass
        zc.unregister_service(info)
    finally:
        zc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
