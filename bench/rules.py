"""Rules engine: validating one setup-networks request on a large host.

    .venv/bin/python bench/rules.py [--runs 30]

The host: 64 NICs, the management network on eth0. The request: 16 bonds (2 slaves each,
eth32..eth63) and 400 VLAN VM networks (VLAN 100..499) spread over the bonds and eth1..eth31,
each with a static address — the whole host set up in one request (the worst case: every
rule runs on every attachment). Also: the same host already set up, and a one-network change
on it. Timed: ``networks.rules.validate_setup_networks`` (pure Python, no database), and
``apply_setup_request`` after it, as the setup service runs them. Goal: median ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402,F401 - puts the repository on sys.path

from networks import rules  # noqa: E402

NICS, BONDS, NETWORKS = 64, 16, 400


def big_host(attached: bool):
    networks = {"ovirtmgmt": rules.NetworkData("ovirtmgmt", vm_network=True, in_cluster=True,
                                               required=True,
                                               roles=frozenset({"management", "display",
                                                                "migration",
                                                                "default_route"}))}
    for j in range(NETWORKS):
        name = f"vlan{100 + j}"
        networks[name] = rules.NetworkData(name, vm_network=True, vlan=100 + j,
                                           in_cluster=True)
    nics = {f"eth{i}": rules.NicData(f"eth{i}") for i in range(NICS)}
    attachments = {"ovirtmgmt": rules.AttachmentData(
        "ovirtmgmt", "eth0", rules.IpConfig("static", "198.18.0.10", "24", "198.18.0.1"))}
    request = full_request()
    host = rules.HostData(name="big", cluster="c", nics=nics, attachments=attachments,
                          networks=networks)
    if attached:
        host = rules.apply_setup_request(host, request)
    return host, request


def interfaces() -> list[str]:
    return [f"bond{b}" for b in range(BONDS)] + [f"eth{i}" for i in range(1, 32)]


def full_request() -> rules.SetupRequest:
    bonds = tuple(rules.BondData(f"bond{b}", 1, "miimon=100",
                                 (f"eth{32 + 2 * b}", f"eth{33 + 2 * b}"))
                  for b in range(BONDS))
    where = interfaces()
    attachments = tuple(
        rules.AttachmentData(f"vlan{100 + j}", where[j % len(where)],
                             rules.IpConfig("static", f"198.19.{j // 200}.{10 + j % 200}",
                                            "24"))
        for j in range(NETWORKS))
    return rules.SetupRequest(bonds=bonds, attachments=attachments)


def timed(fn, runs: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    empty, request = big_host(attached=False)
    full, _ = big_host(attached=True)
    violations = rules.validate_setup_networks(empty, request)
    if violations:
        raise SystemExit(f"the bench request breaks rules: {violations[:3]}")
    one = rules.SetupRequest(attachments=(rules.AttachmentData(
        "vlan499", "eth31", rules.IpConfig("static", "198.19.9.9", "24")),))
    assert not rules.validate_setup_networks(full, one), rules.validate_setup_networks(full, one)
    cases = [
        ("validate: 16 bonds + 400 VLAN networks on an empty 64-NIC host",
         lambda: rules.validate_setup_networks(empty, request)),
        ("validate + apply_setup_request (what the service runs)",
         lambda: rules.apply_setup_request(empty, request)
         if not rules.validate_setup_networks(empty, request) else None),
        ("validate the same request again on the set-up host (no change)",
         lambda: rules.validate_setup_networks(full, request)),
        ("validate a one-network move on the set-up host",
         lambda: rules.validate_setup_networks(full, one)),
    ]
    rows = []
    for label, fn in cases:
        times = timed(fn, args.runs)
        rows.append([label, statistics.median(times), min(times), max(times)])
    header = common.machine()
    text = common.table(["case", "median ms", "min ms", "max ms"], rows)
    worst = rows[0][1]
    goal = f"Goal median ≤ 50 ms: {worst:.1f} ms → {'met' if worst <= 50 else 'missed'} " \
           f"({worst / 50:.2f} × the limit)."
    print(header)
    print(text)
    print(goal)
    if not args.no_write:
        common.write_section("rules", (
            f"## Rules engine (`bench/rules.py --runs {args.runs}`)\n\n"
            f"Measured {header}. `networks.rules.validate_setup_networks` on a host with "
            f"{NICS} NICs; the request creates {BONDS} bonds and {NETWORKS} VLAN VM networks "
            f"with static addresses; {args.runs} runs after a warm-up.\n\n{text}\n\n{goal}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
