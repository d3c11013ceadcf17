"""Web at scale: SQL queries and response time of every API list endpoint, the host detail
API, and the UI list, detail and setup pages, with 2,000 hosts against 20.

    .venv/bin/python bench/web.py [--runs 7]

Each inventory is bulk-created into a fresh PostgreSQL database: 2,000 hosts with 4 NICs
each (8,000), 300 networks in one data center (attached to each of 10 clusters), 10,000
network attachments (5 a host), 1,000 VMs with a vNIC each, 500 jobs with 4 entries each;
the small one has 20 hosts and everything else scaled down, but never below one page of 50
rows (networks stay 300; VMs, vNICs and jobs stay 50): a list that does not fill its page
at 20 hosts compared 5 rows against 50, which measures the page size, not the inventory.
The "rows" column says how many rows each list showed at each size (the host list: 20
against 50, as the small inventory has 20 hosts). Both inventories stay open side by side
(databases ``netportal_web`` and ``netportal_web_large``, dropped afterwards) and each page's
requests alternate between them, so both sizes see the same load on a shared machine.
Requests go through Django's test client as a superuser (full middleware, templates, DRF),
page size 50. Goal: the same query count at both sizes, and time at 2,000 ≤ 1.5 × time at
20.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

API_LISTS = ["datacenters", "clusters", "networks", "cluster-networks", "vnic-profiles",
             "hosts", "host-nics", "bonds", "attachments", "vms", "vnics", "jobs", "audit"]
UI_LISTS = ["/", "/datacenters/", "/clusters/", "/networks/", "/hosts/", "/vms/", "/jobs/"]
PAGE = 50  # rows a list shows (the API's default limit, the pages' default per_page)
DATABASES = ("netportal_web", "netportal_web_large")  # the small and the large inventory


def build(hosts: int) -> dict:
    """Bulk-create the inventory; returns ids the pages need."""
    from hosts.choices import HostKeyState, HostStatus, JobHostStatus, JobKind, JobStatus
    from hosts.models import VM, Host, HostNic, Job, JobHost, NetworkAttachment, Vnic
    from networks import services as network_services
    from networks.models import Cluster, ClusterNetwork, DataCenter, Network, VnicProfile

    datacenter = network_services.create_datacenter(DataCenter(name="scale"))
    clusters = [network_services.create_cluster(Cluster(datacenter=datacenter, name=f"c{i}"))
                for i in range(10)]
    management = Network.objects.get(datacenter=datacenter, name="ovirtmgmt")
    networks = Network.objects.bulk_create(
        Network(datacenter=datacenter, name=f"net{j}", vlan=100 + j, on_host_name=f"net{j}")
        for j in range(299))
    VnicProfile.objects.bulk_create(VnicProfile(network=n, name=n.name) for n in networks)
    ClusterNetwork.objects.bulk_create(
        ClusterNetwork(cluster=c, network=n, required=False) for c in clusters for n in networks)
    host_rows = Host.objects.bulk_create(
        Host(name=f"host{i:05d}", address=f"198.18.{2 + i // 250}.{i % 250 + 1}",
             cluster=clusters[i % 10], status=HostStatus.UP,
             host_key_state=HostKeyState.APPROVED, host_key_type="ssh-ed25519",
             host_key="AAAA", host_key_fingerprint="SHA256:x", management_nic="eth0")
        for i in range(hosts))
    nics = HostNic.objects.bulk_create(
        HostNic(host=h, name=f"eth{k}", mac=f"56:6f:00:{i // 256 % 256:02x}:{i % 256:02x}:{k:02x}",
                mtu=1500, link_up=True, speed=10000)
        for i, h in enumerate(host_rows) for k in range(4))
    by_host = {}
    for nic in nics:
        by_host.setdefault(nic.host_id, {})[nic.name] = nic
    attachments = []
    for i, h in enumerate(host_rows):
        attachments.append(NetworkAttachment(host=h, network=management,
                                             nic=by_host[h.pk]["eth0"], in_sync=True))
        for k in range(4):
            network = networks[(i * 4 + k) % len(networks)]
            attachments.append(NetworkAttachment(host=h, network=network,
                                                 nic=by_host[h.pk][f"eth{1 + k % 3}"],
                                                 in_sync=True))
    NetworkAttachment.objects.bulk_create(attachments, batch_size=2000)
    profiles = {p.network_id: p for p in VnicProfile.objects.all()}
    vms = VM.objects.bulk_create(
        VM(name=f"vm{i:05d}", cluster=host_rows[i * 2 % hosts].cluster,
           host=host_rows[i * 2 % hosts]) for i in range(max(hosts // 2, PAGE)))
    Vnic.objects.bulk_create(
        Vnic(vm=vm, name="nic1", mac=f"56:6f:01:{i // 256 % 256:02x}:{i % 256:02x}:01",
             profile=profiles[networks[i % len(networks)].pk]) for i, vm in enumerate(vms))
    jobs = Job.objects.bulk_create(
        Job(kind=JobKind.SETUP_NETWORKS, status=JobStatus.COMMITTED, description=f"job {i}")
        for i in range(max(hosts // 4, PAGE)))
    JobHost.objects.bulk_create(
        JobHost(job=job, host=host_rows[(i * 4 + k) % hosts], status=JobHostStatus.COMMITTED)
        for i, job in enumerate(jobs) for k in range(min(4, hosts)))
    return {"host": host_rows[hosts // 2].pk, "job": jobs[-1].pk, "vm": vms[-1].pk,
            "network": networks[0].pk, "cluster": clusters[0].pk}


def page_rows(response) -> int | None:
    """The rows a list showed: an API list's results, the list page's table rows."""
    if response.get("Content-Type", "").startswith("application/json"):
        data = response.json()
        return len(data["results"]) if isinstance(data, dict) and "results" in data else None
    table = re.search(r'<table[^>]*object-list.*?<tbody>(.*?)</tbody>',
                      response.content.decode(), re.S)
    return table.group(1).count("<tr") if table else None


class Side:
    """One inventory in its own database, reached through its own open connection, with a
    client logged in there. ``use()`` makes it the connection the portal's code uses."""

    def __init__(self, hosts: int, database: str, wrapper, client, ids: dict):
        self.hosts, self.database, self.wrapper = hosts, database, wrapper
        self.client, self.ids = client, ids

    def use(self) -> None:
        from django.db import connections

        connections["default"] = self.wrapper


def measure(sides: list[Side], urls: list[str], runs: int) -> list[tuple]:
    """Per side: (queries, median ms, status, rows shown) of GET its url.

    The sides' requests alternate (small, large, large, small, ...) after a warm-up of each,
    so both see the same load: on a shared machine the load changes within seconds, and
    measuring one size after the other compared a quiet moment with a busy one.
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for side, url in zip(sides, urls, strict=True):
        side.use()
        side.client.get(url)  # warm-up (templates, caches)
    times: list[list[float]] = [[] for _ in sides]
    last = [(0, 0, None)] * len(sides)
    for run in range(runs):
        order = range(len(sides)) if run % 2 == 0 else reversed(range(len(sides)))
        for i in order:
            sides[i].use()
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = sides[i].client.get(urls[i])
                times[i].append((time.perf_counter() - started) * 1000)
            last[i] = (len(captured), response.status_code, page_rows(response))
    return [(queries, statistics.median(t), status, rows)
            for (queries, status, rows), t in zip(last, times, strict=True)]


def urls(ids: dict, with_ui: bool) -> list[tuple[str, str]]:
    out = [(f"API list {name}", f"/api/{name}/") for name in API_LISTS]
    out.append(("API host detail", f"/api/hosts/{ids['host']}/"))
    if with_ui:
        out += [(f"UI list {u}", u) for u in UI_LISTS]
        out += [("UI host detail", f"/hosts/{ids['host']}/"),
                ("UI setup networks page", f"/hosts/{ids['host']}/setup-networks/"),
                ("UI job detail", f"/jobs/{ids['job']}/"),
                ("UI cluster detail", f"/clusters/{ids['cluster']}/")]
    return out


def prepare(hosts: int, database: str) -> Side:
    """A fresh database ``database`` holding the inventory of ``hosts`` hosts, migrated,
    analysed, with a superuser's client."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connections
    from django.test import Client

    from hosts.models import Host, HostNic, NetworkAttachment

    if "testserver" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    current = connections["default"]
    if current.settings_dict["NAME"] != database:
        common.fresh_database(database)
        wrapper = type(current)({**current.settings_dict, "NAME": database}, "default")
        connections["default"] = wrapper
        call_command("migrate", verbosity=0, interactive=False)
    started = time.perf_counter()
    ids = build(hosts)
    subprocess.run(["psql", f"{common.PG_SERVER}/{database}", "-qc", "ANALYZE"],  # noqa: S603, S607
                   check=False, capture_output=True)
    print(f"{hosts} hosts: {Host.objects.count()} hosts, {HostNic.objects.count()} NICs, "
          f"{NetworkAttachment.objects.count()} attachments built in "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    user = get_user_model().objects.create_superuser("bench", "bench@example.org", "x")
    client = Client()
    client.force_login(user)
    return Side(hosts, database, connections["default"], client, ids)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--large", type=int, default=2000)
    parser.add_argument("--small", type=int, default=20)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    with_ui = bool(subprocess.run(["git", "ls-files", "portal/views.py"], cwd=common.REPO,  # noqa: S603, S607
                                  capture_output=True, text=True, check=False).stdout.strip())
    common.setup_django(DATABASES[0])
    header = common.machine()
    sides: list[Side] = []
    results = {}
    try:
        for hosts, database in zip((args.small, args.large), DATABASES, strict=True):
            sides.append(prepare(hosts, database))
        pages = [urls(side.ids, with_ui) for side in sides]
        for (label, small_url), (_, large_url) in zip(*pages, strict=True):
            results[label] = measure(sides, [small_url, large_url], args.runs)
            print(f"  {label}: {results[label]}", flush=True)
    finally:
        for side in sides:
            side.wrapper.close()
        for database in DATABASES:
            common.drop_database(database)
    rows, same_queries, within = [], 0, 0
    for label, ((q1, t1, s1, r1), (q2, t2, s2, r2)) in results.items():
        ratio = t2 / t1 if t1 else None
        same_queries += q1 == q2
        within += bool(ratio and ratio <= 1.5)
        shown = "—" if r1 is None else f"{r1}/{r2}"
        rows.append([label, q1, q2, t1, t2, ratio, shown, f"{s1}/{s2}"])
    text = common.table(["page", f"queries @{args.small}", f"queries @{args.large}",
                         f"ms @{args.small}", f"ms @{args.large}", "time ratio", "rows",
                         "HTTP"], rows)
    goal = (f"Same query count: {same_queries} of {len(rows)} pages. Time at {args.large} ≤ "
            f"1.5 × time at {args.small}: {within} of {len(rows)} pages.")
    print(header)
    print(text)
    print(goal)
    if not args.no_write:
        common.write_section("web", (
            f"## Web at scale (`bench/web.py --runs {args.runs}`)\n\n"
            f"Measured {header}. {args.large} hosts / {args.large * 4} NICs / 300 networks / "
            f"{args.large * 5} attachments against {args.small} hosts (same shape, but "
            f"never less than a page of {PAGE} VMs, vNICs and jobs, so that both sizes list "
            "the same rows; \"rows\": rows each list showed at each size); Django "
            f"test client as a superuser, page size {PAGE}, median of {args.runs} requests "
            "after a warm-up, the two sizes' requests alternating."
            + ("" if with_ui else " No UI pages yet (portal/views.py is not in git).")
            + f"\n\n{text}\n\n{goal}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
