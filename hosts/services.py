"""One function per operator action on hosts, their networks, VMs and vNICs; and jobs.

Each builds the plain data of networks/rules.py from the database, validates with it, writes
in one transaction, and (for work on hosts) writes the job row first and queues its task with
``transaction.on_commit`` so a rolled-back request never runs and a queued task always finds
its row.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from hosts.choices import (
    HostKeyState,
    HostStatus,
    JobHostStatus,
    JobKind,
    JobStatus,
    LogLevel,
    VmStatus,
)
from hosts.models import (
    VM,
    Bond,
    Host,
    HostNic,
    Job,
    JobHost,
    JobLog,
    NetworkAttachment,
    Vnic,
)
from networks import rules
from networks.models import Cluster, ClusterNetwork, Network, VnicProfile
from portal.errors import RuleViolationError

log = logging.getLogger(__name__)

# --- Plain data of a host ---------------------------------------------------------------


def host_rule_data(host: Host, networks_cache: dict | None = None) -> rules.HostData:
    """The host as networks/rules.py sees it, in a fixed number of queries.

    ``networks_cache`` (a dict the caller keeps for one operation over many hosts) holds
    the networks of each cluster as the rules see them, read once per cluster instead of
    once per host; the operation must not change networks or cluster assignments.
    """
    return hosts_rule_data([host], networks_cache)[host.pk]


@dataclass
class HostRows:
    """A host's NIC, bond and attachment rows (attachments with network, NIC and bond)."""

    nics: list = field(default_factory=list)
    bonds: list = field(default_factory=list)
    attachments: list = field(default_factory=list)


def load_host_rows(ids: Iterable[int]) -> dict[int, HostRows]:
    """The rows of several hosts (by host id), one query per table whatever their number."""
    rows = {pk: HostRows() for pk in ids}
    for nic in HostNic.objects.filter(host_id__in=list(rows)).order_by("pk"):
        rows[nic.host_id].nics.append(nic)
    for bond in Bond.objects.filter(host_id__in=list(rows)).order_by("pk"):
        rows[bond.host_id].bonds.append(bond)
    for attachment in NetworkAttachment.objects.filter(host_id__in=list(rows)).select_related(
            "network", "nic", "bond"):
        rows[attachment.host_id].attachments.append(attachment)
    return rows


def hosts_rule_data(hosts: Iterable[Host], networks_cache: dict | None = None, *,
                    rows: dict[int, HostRows] | None = None) -> dict[int, rules.HostData]:
    """Several hosts as the rules see them (by host id), in the same few queries whatever
    their number: a worker storing fifty reports at once reads each table once.

    ``rows`` (`load_host_rows`) are used instead of reading them, when the caller holds
    them already.
    """
    hosts = list(hosts)
    ids = [h.pk for h in hosts]
    if rows is None:
        rows = load_host_rows(ids)
    nics = {pk: rows[pk].nics for pk in ids}
    bonds = {pk: rows[pk].bonds for pk in ids}
    attachments = {pk: rows[pk].attachments for pk in ids}
    in_use: dict[int, set[str]] = defaultdict(set)
    for host_id, name in Vnic.objects.filter(
            vm__host_id__in=ids, vm__status=VmStatus.UP, profile__isnull=False
    ).values_list("vm__host_id", "profile__network__name"):
        in_use[host_id].add(name)
    networks_cache = {} if networks_cache is None else networks_cache
    data = {}
    for host in hosts:
        networks = networks_cache.get(host.cluster_id)
        if networks is None:
            networks = networks_cache[host.cluster_id] = _cluster_rule_networks(host.cluster)
        slaves: dict[int, list[str]] = defaultdict(list)
        for nic in nics[host.pk]:
            if nic.bond_id:
                slaves[nic.bond_id].append(nic.name)
        data[host.pk] = rules.HostData(
            name=host.name, cluster=host.cluster.name,
            nics={n.name: rules.NicData(n.name, frozenset(n.labels or []), link_up=n.link_up)
                  for n in nics[host.pk]},
            bonds={b.name: rules.BondData(b.name, b.mode, b.options,
                                          tuple(sorted(slaves[b.pk])),
                                          frozenset(b.labels or []))
                   for b in bonds[host.pk]},
            attachments={a.network.name: a.as_rule_data() for a in attachments.get(host.pk, [])},
            networks=networks, networks_used_by_running_vms=frozenset(in_use[host.pk]),
        )
    return data


def _cluster_rule_networks(cluster: Cluster) -> dict[str, rules.NetworkData]:
    """The networks of the cluster's data center as the rules see them, with the cluster's
    assignment of each."""
    assignments = {row.network_id: row
                   for row in ClusterNetwork.objects.filter(cluster_id=cluster.pk)}
    return {network.name: network.as_rule_data(assignments.get(network.pk))
            for network in Network.objects.filter(datacenter_id=cluster.datacenter_id)}


# --- Jobs -------------------------------------------------------------------------------


def queue_job(kind: str, hosts: Iterable[Host], *, request: dict | None = None, user=None,
              description: str = "") -> Job:
    """Write the job and its per-host entries, then queue the task once committed.

    The task gets the job id only: it reads everything else (credentials included) from the
    database.
    """
    job = Job.objects.create(kind=kind, request=request or {}, description=description,
                             created_by=user if user and user.is_authenticated else None)
    JobHost.objects.bulk_create(JobHost(job=job, host=host) for host in hosts)

    transaction.on_commit(lambda: enqueue_job(job.pk))
    return job


def enqueue_job(job_id: int) -> bool:
    """Send the job's task to the broker. When the broker is down the job stays in the
    database, says so in its log, and the periodic sweeper (or the next worker start) sends
    it once the broker is back: never dropped, never a server error for the operator."""
    from hosts.tasks import run_job

    try:
        run_job.apply_async((job_id,), retry=True, retry_policy={
            "max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5})
    except Exception as exc:  # kombu raises several types for an unreachable broker
        log.warning("job %s kept, broker unavailable: %s", job_id, exc)
        JobLog.objects.create(
            job_id=job_id, level=LogLevel.WARNING,
            message="The task queue is unavailable; the job is kept and starts as soon as "
                    "it is back.")
        return False
    Job.objects.filter(pk=job_id, queued=False).update(queued=True)
    return True



# --- Setup host networks ----------------------------------------------------------------


@dataclass(frozen=True)
class ApplyOptions:
    """How a change is applied on the host (RULES.md "Applying to a host")."""

    check_connectivity: bool = True
    connectivity_timeout: int = field(
        default_factory=lambda: settings.NETPORTAL_CONNECTIVITY_TIMEOUT)
    commit_on_success: bool = True

    def as_dict(self) -> dict:
        return {"check_connectivity": self.check_connectivity,
                "connectivity_timeout": self.connectivity_timeout,
                "commit_on_success": self.commit_on_success}


@dataclass
class SetupOutcome:
    violations: list[rules.Violation]
    job: Job | None = None
    result: rules.HostData | None = None

    @property
    def ok(self) -> bool:
        return not self.violations


def setup_networks(host: Host, request: rules.SetupRequest, *, options: ApplyOptions | None = None,
                   user=None, dry_run: bool = False, push: bool = True) -> SetupOutcome:
    """Validate a host's setup-networks request as a whole; unless ``dry_run``, store the
    new desired state and (with ``push``) queue the job that pushes it to the host.

    Every violation is returned at once; nothing is written when there is any. ``push`` is
    off only for inventory that no host backs (the demo data).
    """
    options = options or ApplyOptions()
    with transaction.atomic():
        host = Host.objects.select_for_update().select_related("cluster").get(pk=host.pk)
        rows = load_host_rows([host.pk])
        cache: dict = {}
        before = hosts_rule_data([host], cache, rows=rows)[host.pk]
        violations = rules.validate_setup_networks(before, request)
        if violations:
            return SetupOutcome(violations)
        after = rules.apply_setup_request(before, request)
        if dry_run:
            return SetupOutcome([], result=after)
        _persist_host_networks(host, after, rows=rows[host.pk])
        refresh_host_status(host, networks_cache=cache)
        if not push:
            return SetupOutcome([], result=after)
        job = queue_job(JobKind.SETUP_NETWORKS, [host], user=user,
                        request={"host": host.pk, **request_as_dict(request),
                                 **options.as_dict()},
                        description=f"Setup networks of {host.name}")
        return SetupOutcome([], job=job, result=after)


@dataclass
class ManySetupOutcome:
    """The outcome of one change pushed to many hosts: every host's violations (by host
    name), or the one job that carries the change to all of them."""

    violations: dict[str, list[rules.Violation]]
    job: Job | None = None

    @property
    def ok(self) -> bool:
        return not self.violations


def setup_networks_many(requests, *, options: ApplyOptions | None = None, user=None,
                        description: str = "") -> ManySetupOutcome:
    """One change to many hosts in ONE job (say, a new network attached to every host of a
    cluster, each with its own address): each host's request is validated exactly as
    `setup_networks` validates it; when any host's request breaks a rule nothing is written
    and every host's violations are returned. Otherwise the new desired states are stored
    and one job with an entry per host pushes them (its hosts run in parallel).

    ``requests``: (host, SetupRequest) pairs, or a dict host -> SetupRequest.
    """
    options = options or ApplyOptions()
    pairs = list(requests.items() if isinstance(requests, dict) else requests)
    if not pairs:
        return ManySetupOutcome({})
    with transaction.atomic():
        # Lock every host row in one query, in a fixed order (no deadlock with another
        # fan-out over the same hosts).
        locked = {h.pk: h for h in Host.objects.select_for_update().select_related("cluster")
                  .filter(pk__in=[h.pk for h, _r in pairs]).order_by("pk")}
        if len(locked) != len(pairs):
            raise ValueError("setup_networks_many: one request per host")
        # Every host read, validated, written and judged together: each table read once
        # for all hosts instead of a dozen queries per host (1.4 s for fifty hosts).
        cache: dict = {}  # the networks of each cluster, read once
        rows = load_host_rows(locked)
        befores = hosts_rule_data(locked.values(), cache, rows=rows)
        violations: dict[str, list[rules.Violation]] = {}
        afters: dict[int, rules.HostData] = {}
        for given, request in pairs:
            host = locked[given.pk]
            found = rules.validate_setup_networks(befores[host.pk], request)
            if found:
                violations[host.name] = found
            elif not violations:
                afters[host.pk] = rules.apply_setup_request(befores[host.pk], request)
        if violations:
            transaction.set_rollback(True)
            return ManySetupOutcome(violations)
        networks = _networks_named(locked.values(), afters)
        for pk, after in afters.items():
            _persist_host_networks(locked[pk], after, rows=rows[pk], networks=networks)
        refresh_hosts_status(locked.values(), networks_cache=cache)
        done = [(locked[given.pk], request) for given, request in pairs]
        job = queue_job(JobKind.SETUP_NETWORKS, [h for h, _r in done], user=user,
                        request={"hosts": {str(h.pk): request_as_dict(r) for h, r in done},
                                 **options.as_dict()},
                        description=description or f"Setup networks of {len(done)} hosts")
        return ManySetupOutcome({}, job=job)


def _networks_named(hosts: Iterable[Host], afters: dict[int, rules.HostData]
                    ) -> dict[tuple[int, str], Network]:
    """The networks the hosts' new states attach, by (data center id, name): one query."""
    wanted = {(h.cluster.datacenter_id, name) for h in hosts if h.pk in afters
              for name in afters[h.pk].attachments}
    found = Network.objects.filter(datacenter_id__in={dc for dc, _name in wanted},
                                   name__in={name for _dc, name in wanted})
    return {(n.datacenter_id, n.name): n for n in found}


def queue_preview(host: Host, request: rules.SetupRequest, options: ApplyOptions, *,
                  user=None) -> Job:
    """The job that asks the host's agent for the exact commands of ``request``."""
    with transaction.atomic():
        return queue_job(JobKind.PREVIEW, [host], user=user,
                         request={"host": host.pk, **request_as_dict(request),
                                  **options.as_dict()},
                         description=f"Preview the setup of {host.name}")


def _setup_rolled_back(host: Host, request: rules.SetupRequest, compile_options: dict):
    """Store ``request`` inside a transaction that is always rolled back, and return what
    it would do: (host before as the rules see it, document before, outcome, document
    after or None). The documents are exactly what an apply would push."""
    from hosts.state import compile_state

    with transaction.atomic():
        fresh = Host.objects.select_related("cluster").get(pk=host.pk)
        host_before = host_rule_data(fresh)
        before = compile_state(fresh, **compile_options)
        outcome = setup_networks(fresh, request, push=False)
        after = None
        if outcome.ok:
            after = compile_state(Host.objects.select_related("cluster").get(pk=host.pk),
                                  **compile_options)
        transaction.set_rollback(True)
    return host_before, before, outcome, after


def compile_would_be_state(host: Host, request: rules.SetupRequest, **compile_options) -> dict:
    """The desired-state document the host would get after ``request``."""
    _host_before, _before, outcome, after = _setup_rolled_back(host, request, compile_options)
    if not outcome.ok:
        raise RuleViolationError(outcome.violations)
    return after


def request_as_dict(request: rules.SetupRequest) -> dict:
    """The request as JSON data, for the job row (what was asked, for the audit)."""

    def ip(cfg: rules.IpConfig) -> dict:
        return {"boot_protocol": cfg.boot_protocol, "address": cfg.address,
                "netmask": cfg.netmask, "gateway": cfg.gateway}

    return {
        "bonds": [{"name": b.name, "mode": b.mode, "options": b.options,
                   "slaves": list(b.slaves)} for b in request.bonds],
        "removed_bonds": list(request.removed_bonds),
        "attachments": [{"network": a.network, "interface": a.interface, "ipv4": ip(a.ipv4),
                         "ipv6": ip(a.ipv6)} for a in request.attachments],
        "removed_attachments": list(request.removed_attachments),
        "labels": {k: sorted(v) for k, v in request.labels.items()},
        "synced_networks": sorted(request.synced),
    }


def _persist_host_networks(host: Host, after: rules.HostData, *, rows: HostRows | None = None,
                           networks: dict[tuple[int, str], Network] | None = None) -> bool:
    """Write bonds, slaves, labels and attachments so the database holds ``after``.

    ``rows`` (the host's rows, `load_host_rows`) and ``networks`` (`_networks_named`) are
    used instead of reading them, when the caller read them for many hosts at once.
    Returns whether anything changed.
    """
    changed = False
    if rows is None:
        rows = load_host_rows([host.pk])[host.pk]
    bonds = {b.name: b for b in rows.bonds}
    nics = {n.name: n for n in rows.nics}
    attachments = {a.network.name: a for a in rows.attachments}

    # Attachments that go away first: they may hold bonds that go away too.
    for name in set(attachments) - set(after.attachments):
        attachments.pop(name).delete()
        changed = True
    for name in set(bonds) - set(after.bonds):
        for nic in nics.values():
            if nic.bond_id == bonds[name].pk:
                nic.bond = None
        bonds.pop(name).delete()
        changed = True
    for name, want in after.bonds.items():
        bond = bonds.get(name) or Bond(host=host, name=name)
        fields = {"mode": want.mode, "options": want.options,
                  "labels": sorted(want.labels)}
        if bond.pk is None or any(getattr(bond, k) != v for k, v in fields.items()):
            for key, value in fields.items():
                setattr(bond, key, value)
            bond.save()
            bonds[name] = bond
            changed = True
    slave_of = {s: bonds[b.name] for b in after.bonds.values() for s in b.slaves}
    for name, nic in nics.items():
        want_bond = slave_of.get(name)
        want_labels = sorted(after.nics[name].labels) if name in after.nics else nic.labels
        if nic.bond_id != (want_bond.pk if want_bond else None) or nic.labels != want_labels:
            nic.bond = want_bond
            nic.labels = want_labels
            nic.save(update_fields=["bond", "labels", "updated"])
            changed = True
    if networks is None:
        networks = _networks_named([host], {host.pk: after})
    datacenter = host.cluster.datacenter_id
    for name, want in after.attachments.items():
        row = attachments.get(name) or NetworkAttachment(host=host,
                                                         network=networks[datacenter, name])
        values = {
            "nic": nics.get(want.interface), "bond": bonds.get(want.interface),
            "ipv4_boot_protocol": want.ipv4.boot_protocol, "ipv4_address": want.ipv4.address,
            "ipv4_netmask": want.ipv4.netmask, "ipv4_gateway": want.ipv4.gateway,
            "ipv6_boot_protocol": want.ipv6.boot_protocol, "ipv6_address": want.ipv6.address,
            "ipv6_prefix": want.ipv6.netmask, "ipv6_gateway": want.ipv6.gateway,
            "via_label": want.via_label,
        }
        if row.pk is None or any(getattr(row, k) != v for k, v in values.items()) or (
                row.in_sync == want.out_of_sync):
            for key, value in values.items():
                setattr(row, key, value)
            if not want.out_of_sync:
                row.in_sync, row.out_of_sync = True, []
            row.save()
            changed = True
    return changed


def propagate_labels(*, cluster: Cluster | None = None, host: Host | None = None,
                     user=None) -> list[Job]:
    """Attach labelled networks to the NICs carrying their label (and detach what lost
    it) on one host or every host of a cluster; queue a job per changed host."""
    hosts = [host] if host else list(Host.objects.filter(cluster=cluster))
    jobs = []
    for each in hosts:
        before = host_rule_data(each)
        after = rules.apply_setup_request(before, rules.SetupRequest())
        if after != before and _persist_host_networks(each, after):
            refresh_host_status(each)
            jobs.append(queue_job(JobKind.SETUP_NETWORKS, [each], user=user,
                                  description=f"Label propagation on {each.name}"))
    return jobs


def set_nic_labels(host: Host, interface: str, labels: Iterable[str], *, user=None,
                   dry_run: bool = False) -> SetupOutcome:
    """Label a NIC or bond; the cluster's networks with those labels follow (RULES.md
    "Labels"). A setup-networks request of labels only."""
    request = rules.SetupRequest(labels={interface: frozenset(labels)})
    return setup_networks(host, request, user=user, dry_run=dry_run)


# --- Reactions to network changes --------------------------------------------------------


def _hosts_carrying(network: Network, cluster: Cluster | None = None) -> list[Host]:
    hosts = Host.objects.filter(attachments__network=network)
    if cluster is not None:
        hosts = hosts.filter(cluster=cluster)
    return list(hosts.distinct())


def network_changed(network: Network, user=None) -> Job | None:
    """A network's MTU, VLAN or bridge flag changed: every host that carries it is out of
    sync until the change is pushed, which the reference does at once; so do we."""
    hosts = _hosts_carrying(network)
    if not hosts:
        return None
    NetworkAttachment.objects.filter(network=network).update(in_sync=False)
    return queue_job(JobKind.NETWORK_CHANGE, hosts, user=user,
                     request={"network": network.pk},
                     description=f"Push the change of network {network.name}")


def network_removed(network: Network, user=None) -> Job | None:
    """A network is being deleted: hosts stop carrying it (a job removes it everywhere)."""
    _refuse_if_running_vms(network, Host.objects.filter(attachments__network=network))
    hosts = _hosts_carrying(network)
    NetworkAttachment.objects.filter(network=network).delete()
    if not hosts:
        return None
    return queue_job(JobKind.NETWORK_CHANGE, hosts, user=user,
                     request={"removed_network": network.name},
                     description=f"Remove network {network.name} from its hosts")


def network_detached_from_cluster(network: Network, cluster: Cluster, user=None) -> Job | None:
    """A network leaves a cluster: its hosts stop carrying it."""
    hosts = _hosts_carrying(network, cluster)
    _refuse_if_running_vms(network, hosts)
    NetworkAttachment.objects.filter(network=network, host__cluster=cluster).delete()
    if not hosts:
        return None
    for host in hosts:
        refresh_host_status(host)
    return queue_job(JobKind.NETWORK_CHANGE, hosts, user=user,
                     request={"removed_network": network.name},
                     description=f"Detach network {network.name} from cluster {cluster.name}")


def _refuse_if_running_vms(network: Network, hosts) -> None:
    running = sorted(set(
        Vnic.objects.filter(profile__network=network, vm__status=VmStatus.UP, vm__host__in=hosts)
        .values_list("vm__name", flat=True)))
    violations = rules.check_network_leaving_hosts(network=network.name, running_vms=running)
    if violations:
        raise RuleViolationError(violations)


# --- Host status ------------------------------------------------------------------------

# Statuses the compliance check may change; the others come from reachability or an
# operator's choice (maintenance) and stay until those change.
COMPLIANCE_STATUSES = (HostStatus.UP, HostStatus.NON_OPERATIONAL)


def refresh_host_status(host: Host, *, reachable: bool = False,
                        networks_cache: dict | None = None) -> Host:
    """Recompute Up / NonOperational from the networks the host carries (RULES.md "Host
    status"). ``reachable`` marks a host just heard from, whatever its previous status.
    ``networks_cache``: see `host_rule_data`."""
    refresh_hosts_status([host], reachable=reachable, networks_cache=networks_cache)
    return host


def refresh_hosts_status(hosts: Iterable[Host], *, reachable: bool = False,
                         networks_cache: dict | None = None) -> None:
    """`refresh_host_status` of several hosts, reading each table once for all of them."""
    hosts = [h for h in hosts if reachable or h.status in COMPLIANCE_STATUSES]
    if not hosts:
        return
    rows = load_host_rows([h.pk for h in hosts])
    data = hosts_rule_data(hosts, networks_cache, rows=rows)
    for host in hosts:
        set_compliance_status(host, data[host.pk], rows[host.pk].attachments)


def set_compliance_status(host: Host, data: rules.HostData,
                          attachments: Iterable[NetworkAttachment]) -> Host:
    """Up or NonOperational by the rules, from the host's data and what its attachments
    reported; saved (and audited) only when it changes."""
    bridged = {a.network.name: (a.reported or {}).get("bridged") for a in attachments
               if (a.reported or {}).get("bridged") is not None}
    operational, reason = rules.host_compliance(data, bridged=bridged)
    status = HostStatus.UP if operational else HostStatus.NON_OPERATIONAL
    if (host.status, host.status_reason) != (status, reason):
        host.status, host.status_reason = status, reason
        host.save(update_fields=["status", "status_reason", "updated"])
    return host


def cluster_network_status(cluster: Cluster) -> list[ClusterNetwork]:
    """The cluster's network assignments, each with ``operational`` set (RULES.md: a
    required network is non-operational while an Up host lacks it).

    One query returns only the (network, host) pairs that lack, usually none. An optional
    network is operational whatever the hosts carry, so its hosts are not read at all;
    building every network's list in Python was 300 networks x 200 hosts at 2,000 hosts.
    """
    carried = NetworkAttachment.objects.filter(host=OuterRef("pk"),
                                               network=OuterRef("required_network"))
    pairs = (Host.objects.filter(cluster=cluster, status=HostStatus.UP,
                                 cluster__cluster_networks__required=True)
             .annotate(required_network=F("cluster__cluster_networks__network"))
             .filter(~Exists(carried)).order_by("name")
             .values_list("required_network", "name"))
    lacking: dict[int, list[str]] = defaultdict(list)
    for network_id, name in pairs:
        lacking[network_id].append(name)
    rows = list(cluster.cluster_networks.select_related("network"))
    for row in rows:
        row.operational = rules.required_network_operational(row.required,
                                                             lacking[row.network_id])
    return rows


# --- Hosts ------------------------------------------------------------------------------


@transaction.atomic
def create_host(host: Host, *, user=None, password: str = "") -> Host:
    """Register a new host and queue the job that installs it (host key, report, management
    network). A one-time ``password`` installs the portal's key; it is kept encrypted until
    that job used it, and never passed to the task."""
    from portal import crypto

    host.full_clean()
    host.install_password = crypto.encrypt(password) if password else ""
    host.save()
    queue_job(JobKind.ADD_HOST, [host], user=user, description=f"Add host {host.name}")
    return host


@transaction.atomic
def approve_host_key(host: Host, fingerprint: str, *, user=None) -> Job:
    """An operator vouches for the host key with this fingerprint: pin it and (re)install.

    For a pending key the fingerprint must be the recorded one; for a changed key it names
    the new key, which the next contact pins if it presents exactly that key.
    """
    host = Host.objects.select_for_update().get(pk=host.pk)
    fingerprint = fingerprint.strip()
    if host.host_key_state == HostKeyState.PENDING:
        violations = rules.check_host_key_approval(
            host=host.name, pending_fingerprint=host.host_key_fingerprint, given=fingerprint)
        if violations:
            raise RuleViolationError(violations)
        host.host_key_state = HostKeyState.APPROVED
    else:
        host.host_key = host.host_key_type = host.host_key_fingerprint = ""
        host.host_key_state = HostKeyState.UNKNOWN
        host.expected_fingerprint = fingerprint
    host.save()
    return queue_job(JobKind.ADD_HOST, [host], user=user,
                     description=f"Install host {host.name} (key approved)")


def sync_hosts(hosts, *, user=None, description: str = "") -> Job | None:
    """Push the portal's view to these hosts (sync one attachment, a host, a cluster): the
    agent applies the whole desired state, so syncing is an apply."""
    hosts = list(hosts)
    if not hosts:
        return None
    with transaction.atomic():
        return queue_job(JobKind.SYNC, hosts, user=user,
                         description=description or f"Sync {len(hosts)} host(s)")


def refresh_hosts(hosts, *, user=None) -> Job | None:
    """Read these hosts' state now (NICs, sync state, status)."""
    hosts = list(hosts)
    if not hosts:
        return None
    with transaction.atomic():
        return queue_job(JobKind.REFRESH, hosts, user=user,
                         description=f"Refresh {', '.join(h.name for h in hosts[:3])}"
                         + (" ..." if len(hosts) > 3 else ""))


def refresh_all_hosts(*, queue: bool = True, user=None) -> Job | None:
    """Read the state of every host whose key is approved (the periodic refresh)."""
    hosts = list(Host.objects.filter(host_key_state=HostKeyState.APPROVED)
                 .exclude(status=HostStatus.MAINTENANCE))
    if not hosts:
        return None
    with transaction.atomic():
        if queue:
            return queue_job(JobKind.REFRESH, hosts, user=user, description="Refresh hosts")
        job = Job.objects.create(kind=JobKind.REFRESH, description="Refresh hosts")
        JobHost.objects.bulk_create(JobHost(job=job, host=host) for host in hosts)
        return job


# --- VMs and vNICs ----------------------------------------------------------------------


def networks_on_host(host: Host | None) -> set[str] | None:
    """VM networks implemented on a host (None when the VM has no host)."""
    if host is None:
        return None
    return set(host.attachments.filter(network__vm_network=True)
               .values_list("network__name", flat=True))


def _used_macs(cluster: Cluster, exclude_pk=None) -> set[str]:
    macs = Vnic.objects.filter(vm__cluster=cluster).exclude(pk=exclude_pk)
    return {m.lower() for m in macs.values_list("mac", flat=True) if m}


def _prepare_vnic(vnic: Vnic, *, lock: bool) -> list[rules.Violation]:
    """Allocate the vNIC's MAC from its cluster's pool when it has none, and return what
    forbids saving it. ``lock`` holds the cluster row so two vNICs never get one MAC."""
    vm = VM.objects.select_related("cluster", "host").get(pk=vnic.vm_id)
    clusters = Cluster.objects.select_for_update() if lock else Cluster.objects
    cluster = clusters.get(pk=vm.cluster_id)
    used = _used_macs(cluster, exclude_pk=vnic.pk)
    if not vnic.mac:
        mac, violations = rules.allocate_vnic_mac(
            cluster=cluster.name, pool_start=cluster.mac_pool_start,
            pool_end=cluster.mac_pool_end, used=used)
        if violations:
            return violations
        vnic.mac = mac
    profile = (VnicProfile.objects.select_related("network").get(pk=vnic.profile_id)
               if vnic.profile_id else None)
    return rules.check_vnic(
        name=vnic.name, mac=vnic.mac, vnic_type=vnic.type, pool_start=cluster.mac_pool_start,
        pool_end=cluster.mac_pool_end, used_macs=used,
        profile_network=profile.network.name if profile else None,
        profile_network_is_vm=bool(profile and profile.network.vm_network),
        networks_on_host=networks_on_host(vm.host),
    )


def check_vnic(vnic: Vnic) -> list[rules.Violation]:
    """What forbids saving the vNIC (for forms and the admin); fills in its MAC if empty."""
    return _prepare_vnic(vnic, lock=False)


@transaction.atomic
def save_vnic(vnic: Vnic) -> Vnic:
    """Create or change a vNIC: MAC from the cluster's pool unless given, valid, unique in the
    pool, and a profile of a VM network implemented on the VM's host."""
    violations = _prepare_vnic(vnic, lock=True)
    if violations:
        raise RuleViolationError(violations)
    vnic.mac = rules.normalize_mac(vnic.mac) or vnic.mac
    vnic.full_clean()
    vnic.save()
    return vnic


def check_vm(vm: VM) -> list[rules.Violation]:
    """What forbids the VM on its host: another cluster's host, or one that lacks the
    networks of the VM's vNICs (RULES.md "VMs and vNICs")."""
    if not vm.host_id or not vm.cluster_id:
        return []
    vnic_networks = set(Vnic.objects.filter(vm_id=vm.pk, profile__isnull=False)
                        .values_list("profile__network__name", flat=True)) if vm.pk else set()
    return rules.check_vm(
        vm=vm.name, cluster=_qualified(vm.cluster), host=vm.host.name,
        host_cluster=_qualified(vm.host.cluster), vnic_networks=vnic_networks,
        networks_on_host=networks_on_host(vm.host))


def _qualified(cluster: Cluster) -> str:
    """A cluster's name with its data center's: cluster names repeat across data centers."""
    return f"{cluster.datacenter.name}/{cluster.name}"


@transaction.atomic
def save_vm(vm: VM) -> VM:
    """Create or change a VM, refusing a host that lacks its vNICs' networks (VM.clean
    reaches `check_vm`)."""
    vm.full_clean()
    vm.save()
    return vm


def finish_job(job: Job) -> Job:
    """Set a job's overall status from its hosts' outcomes."""
    statuses = set(job.hosts.values_list("status", flat=True))
    if statuses <= {JobHostStatus.COMMITTED}:
        job.status = JobStatus.COMMITTED
    elif JobHostStatus.COMMITTED in statuses:
        job.status = JobStatus.PARTIAL
    else:
        job.status = JobStatus.FAILED
    job.finished = timezone.now()
    job.save(update_fields=["status", "finished"])
    return job


def setup_request_from_data(data: dict) -> tuple[rules.SetupRequest, ApplyOptions]:
    """A setup-networks request and its apply options from validated API or form data."""

    def ip(cfg: dict | None) -> rules.IpConfig:
        cfg = cfg or {}
        return rules.IpConfig(cfg.get("boot_protocol") or "none", cfg.get("address") or "",
                              cfg.get("netmask") or "", cfg.get("gateway") or "")

    synced = frozenset(data.get("synced_networks") or [])
    request = rules.SetupRequest(
        bonds=tuple(rules.BondData(b["name"], int(b.get("mode", 1)), b.get("options") or "",
                                   tuple(b.get("slaves") or ())) for b in data.get("bonds", [])),
        removed_bonds=tuple(data.get("removed_bonds") or ()),
        attachments=tuple(
            rules.AttachmentData(a["network"], a["interface"], ip(a.get("ipv4")),
                                 ip(a.get("ipv6")), sync=a["network"] in synced)
            for a in data.get("attachments", [])),
        removed_attachments=tuple(data.get("removed_attachments") or ()),
        labels={k: frozenset(v) for k, v in (data.get("labels") or {}).items()},
        synced=synced,
    )
    options = ApplyOptions(
        check_connectivity=data.get("check_connectivity", True),
        connectivity_timeout=data.get("connectivity_timeout")
        or settings.NETPORTAL_CONNECTIVITY_TIMEOUT,
        commit_on_success=data.get("commit_on_success", True),
    )
    return request, options


# --- Operator UI (issue 5): refresh one host, preview a setup ---------------------------
# Added for the web UI. Composes the services above; changes none of them.


@dataclass
class SetupPreview:
    """What a setup-networks request would do to one host, computed without keeping it.

    ``before`` and ``after`` are the desired-state documents (hosts/state.py); ``result``
    the host as the rules see it afterwards; ``commands_job`` the preview job whose entry
    receives the agent's exact commands (None when the host cannot be reached yet).
    """

    violations: list[rules.Violation]
    before: dict | None = None
    after: dict | None = None
    host_before: rules.HostData | None = None
    result: rules.HostData | None = None
    commands_job: Job | None = None

    @property
    def ok(self) -> bool:
        return not self.violations


def preview_setup_networks(host: Host, request: rules.SetupRequest, *,
                           options: ApplyOptions | None = None, user=None) -> SetupPreview:
    """Validate ``request`` (every violation at once) and, when valid, compile the host's
    desired state before and after it: the setup is stored inside a transaction that is
    then rolled back, so the document is exactly what Apply would push."""
    options = options or ApplyOptions()
    host_before, before, stored, after = _setup_rolled_back(
        host, request, {"check_connectivity": options.check_connectivity,
                        "rollback_timeout": options.connectivity_timeout})
    if not stored.ok:
        return SetupPreview(stored.violations)
    commands_job = None
    if host.host_key_state == HostKeyState.APPROVED and host.status != HostStatus.INSTALLING:
        commands_job = queue_preview(host, request, options, user=user)
    return SetupPreview([], before, after, host_before, stored.result, commands_job)
