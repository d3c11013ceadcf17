"""One function per operator action on data centers, clusters, networks and vNIC profiles.

Forms, the admin, the API and the workers call these; each validates with networks/rules.py
(through ``full_clean()`` for one-row invariants, directly for the rest), writes in one
transaction, and raises `RuleViolationError` with every broken rule when it refuses.
"""

from __future__ import annotations

from django.db import transaction

from networks import constants as c
from networks import rules
from networks.models import Cluster, ClusterNetwork, DataCenter, Network, VnicProfile
from portal.errors import RuleViolationError


def _save(obj) -> None:
    obj.full_clean()
    obj.save()


# --- Data centers and clusters ----------------------------------------------------------


@transaction.atomic
def create_datacenter(datacenter: DataCenter) -> DataCenter:
    """Save a new data center, born with its management network and that network's
    profile."""
    _save(datacenter)
    create_network(Network(datacenter=datacenter, name=c.MANAGEMENT_NETWORK_NAME,
                           description=c.MANAGEMENT_NETWORK_DESCRIPTION, vm_network=True))
    return datacenter


def management_network(datacenter: DataCenter) -> Network:
    """The data center's management network (the one created with it)."""
    return datacenter.networks.get(name=c.MANAGEMENT_NETWORK_NAME)


@transaction.atomic
def create_cluster(cluster: Cluster) -> Cluster:
    """Save a new cluster, attached to its data center's management network (required, role
    management)."""
    _save(cluster)
    # The management network starts with every role: it carries all traffic for which no
    # special-purpose network is configured (DESIGN.md); roles move away from it later.
    row = ClusterNetwork(cluster=cluster, network=management_network(cluster.datacenter),
                         required=True)
    row.set_roles(c.ROLES)
    row.save()
    return cluster


@transaction.atomic
def update_cluster(cluster: Cluster) -> Cluster:
    """Save a cluster's new values; it stays in its data center."""
    stored = Cluster.objects.values_list("datacenter_id", flat=True).get(pk=cluster.pk)
    violations = rules.check_parents_kept("cluster", {"datacenter": stored},
                                          {"datacenter": cluster.datacenter_id})
    if violations:
        raise RuleViolationError(violations)
    _save(cluster)
    return cluster


# --- Networks ---------------------------------------------------------------------------


@transaction.atomic
def create_network(network: Network) -> Network:
    """Save a new logical network; a VM network gets its default vNIC profile of the same
    name. The on-host name is computed here, once."""
    network.on_host_name = network.compute_on_host_name()
    _save(network)
    if network.vm_network:
        VnicProfile.objects.create(network=network, name=network.name)
    return network


def _network_change(network: Network, old: Network) -> rules.NetworkChange:
    """The change of ``network`` (unsaved new values) against its stored row ``old``, as
    the rules see it, with what uses the network now."""
    from hosts.models import HostNic, NetworkAttachment, Vnic  # hosts depends on networks

    hosts_using = tuple(NetworkAttachment.objects.filter(network=network)
                        .values_list("host__name", flat=True))
    vnics = Vnic.objects.filter(profile__network=network)
    vms_using = tuple(sorted(set(vnics.values_list("vm__name", flat=True))))
    label_nics: tuple[str, ...] = ()
    if old.label:
        label_nics = tuple(
            f"{host}/{name}" for host, name, labels in
            HostNic.objects.filter(host__cluster__datacenter=network.datacenter_id)
            .values_list("host__name", "name", "labels") if old.label in (labels or []))
    return rules.NetworkChange(
        old=old.as_rule_data(), new=network.as_rule_data(), hosts_using=hosts_using,
        vms_using=vms_using, vnics_using=vnics.count(), nics_with_old_label=label_nics,
    )


def _network_update(network: Network) -> tuple[rules.NetworkChange, list[rules.Violation]]:
    old = Network.objects.get(pk=network.pk)
    change = _network_change(network, old)
    return change, (rules.check_parents_kept("network", {"datacenter": old.datacenter_id},
                                             {"datacenter": network.datacenter_id})
                    + rules.check_network_change(change))


def check_network_update(network: Network) -> list[rules.Violation]:
    """What forbids saving ``network``'s new values, given what uses it."""
    return _network_update(network)[1]


@transaction.atomic
def update_network(network: Network, user=None) -> Network:
    """Save a network's new values, refusing what its use forbids (RULES.md "Changing a
    network"). A change of MTU, VLAN or bridging is pushed to every host that carries it."""
    change, violations = _network_update(network)
    if violations:
        raise RuleViolationError(violations)
    _save(network)
    if network.vm_network and not network.vnic_profiles.exists():
        VnicProfile.objects.create(network=network, name=network.name)
    if rules.change_needs_push(change):
        from hosts import services as host_services

        host_services.network_changed(network, user=user)
    return network


@transaction.atomic
def delete_network(network: Network) -> None:
    """Remove a network from its data center; refused for the management network and while
    vNICs or hosts' running VMs use it."""
    from hosts.models import Vnic

    vms = sorted(set(Vnic.objects.filter(profile__network=network)
                     .values_list("vm__name", flat=True)))
    is_management = network.name == c.MANAGEMENT_NETWORK_NAME or (
        network.cluster_networks.filter(is_management=True).exists())
    violations = rules.check_network_removal(network=network.name,
                                             is_management=is_management, vms_using=vms)
    if violations:
        raise RuleViolationError(violations)
    from hosts import services as host_services

    host_services.network_removed(network)
    network.delete()


# --- Networks in clusters ---------------------------------------------------------------


def _assignments(cluster: Cluster) -> list[ClusterNetwork]:
    return list(cluster.cluster_networks.select_related("network"))


def _save_assignments(cluster: Cluster, wanted: list[rules.ClusterNetworkData],
                      rows: dict[str, ClusterNetwork]) -> None:
    """Write the wanted assignments: clear moved roles first so the partial unique
    constraints never see two holders."""
    by_name = {a.network: a for a in wanted}
    changed = []
    for name, row in rows.items():
        if name in by_name and (row.roles != by_name[name].roles
                                or row.required != by_name[name].required):
            changed.append((row, by_name[name]))
    for row, _ in changed:
        row.set_roles(row.roles & by_name[row.network.name].roles)
        row.save()
    for row, want in changed:
        row.set_roles(want.roles)
        row.required = want.required
        row.save()


def _attach_plan(cluster: Cluster, network: Network, required: bool, roles):
    """The cluster's assignments after attaching ``network``: (wanted, rows, violations)."""
    rows = {row.network.name: row for row in _assignments(cluster)}
    violations = rules.check_attach_to_cluster(
        network=network.name, network_datacenter=network.datacenter.name, cluster=cluster.name,
        cluster_datacenter=cluster.datacenter.name, networks_in_cluster=rows)
    if violations:
        return [], rows, violations
    previous = [row.as_rule_data() for row in rows.values()]
    wanted = previous + [rules.ClusterNetworkData(network.name, required, frozenset())]
    for role in roles:
        wanted = rules.assign_role(wanted, network.name, role)
    violations = rules.check_cluster_networks(
        wanted, cluster_has_hosts=cluster.hosts.exists(), previous=previous)
    return wanted, rows, violations


def check_attach_network(cluster: Cluster, network: Network, *, required: bool = True,
                         roles=()) -> list[rules.Violation]:
    """What forbids attaching ``network`` to ``cluster`` (for forms and the admin)."""
    return _attach_plan(cluster, network, required, roles)[2]


@transaction.atomic
def attach_network(cluster: Cluster, network: Network, *, required: bool = True,
                   roles=()) -> ClusterNetwork:
    """Assign a data-center network to a cluster (required by default), optionally with
    roles taken from their current holders; labelled networks reach labelled host NICs."""
    wanted, rows, violations = _attach_plan(cluster, network, required, roles)
    if violations:
        raise RuleViolationError(violations)
    row = ClusterNetwork.objects.create(cluster=cluster, network=network, required=required)
    rows[network.name] = row
    _save_assignments(cluster, wanted, rows)
    if network.label:
        from hosts import services as host_services

        host_services.propagate_labels(cluster=cluster)
    _refresh_cluster_hosts(cluster)
    row.refresh_from_db()
    return row


def _refresh_cluster_hosts(cluster: Cluster) -> None:
    """Required networks changed: the hosts' compliance may have changed too."""
    from hosts import services as host_services

    for host in cluster.hosts.select_related("cluster"):
        host_services.refresh_host_status(host)


def _cluster_network_update(row: ClusterNetwork, required, roles):
    """The cluster's assignments after giving ``row`` its new required flag and roles.

    Returns (wanted, previous, rows, violations). Roles stay exclusive: a role given here is
    taken from its holder; a role taken away goes back to the management network.
    """
    cluster = row.cluster
    rows = {r.network.name: r for r in _assignments(cluster)}
    previous = [r.as_rule_data() for r in rows.values()]
    name = row.network.name
    wanted = [
        rules.ClusterNetworkData(
            a.network, required if a.network == name and required is not None else a.required,
            a.roles)
        for a in previous
    ]
    violations = []
    if roles is not None:
        roles = frozenset(roles)
        current = rows[name].roles
        violations += rules.check_role_removal(network=name, cluster=cluster.name,
                                               current_roles=current, new_roles=roles)
        for role in roles - current:
            wanted = rules.assign_role(wanted, name, role)
        holder = _management_holder(wanted)
        for role in current - roles - {c.ROLE_MANAGEMENT}:
            wanted = rules.assign_role(wanted, holder, role)
    violations += rules.check_cluster_networks(
        wanted, cluster_has_hosts=cluster.hosts.exists(), previous=previous)
    return wanted, previous, rows, violations


def check_cluster_network_update(row: ClusterNetwork, *, required=None, roles=None):
    """What forbids giving a cluster network these values (for forms and the admin)."""
    return _cluster_network_update(row, required, roles)[3]


@transaction.atomic
def update_cluster_network(row: ClusterNetwork, *, required: bool | None = None,
                           roles=None, cluster: Cluster | None = None,
                           network: Network | None = None) -> ClusterNetwork:
    """Change a cluster network's required flag and roles, keeping roles exclusive.
    ``cluster`` and ``network``, when an edit gives them, must be the row's own."""
    edited = {k: v.pk for k, v in (("cluster", cluster), ("network", network)) if v}
    violations = rules.check_parents_kept(
        "cluster network", {"cluster": row.cluster_id, "network": row.network_id}, edited)
    if violations:
        raise RuleViolationError(violations)
    wanted, _previous, rows, violations = _cluster_network_update(row, required, roles)
    if violations:
        raise RuleViolationError(violations)
    _save_assignments(row.cluster, wanted, rows)
    _refresh_cluster_hosts(row.cluster)
    row.refresh_from_db()
    return row


def _management_holder(assignments) -> str | None:
    """The network holding the management role: roles taken away fall back to it."""
    return next((a.network for a in assignments if c.ROLE_MANAGEMENT in a.roles), None)


@transaction.atomic
def detach_network(row: ClusterNetwork) -> None:
    """Remove a network from a cluster: its roles go back to the management network, and
    hosts of the cluster stop carrying it."""
    cluster = row.cluster
    rows = {r.network.name: r for r in _assignments(cluster)}
    wanted, violations = rules.detach_from_cluster(
        [r.as_rule_data() for r in rows.values()], row.network.name)
    if violations:
        raise RuleViolationError(violations)
    from hosts import services as host_services

    host_services.network_detached_from_cluster(row.network, cluster)
    rows.pop(row.network.name).delete()
    _save_assignments(cluster, wanted, rows)


# --- Operator UI: the cluster's "Manage networks" table, saved at once ------------------
# Added for the web UI (issue 5). Composes the services above; changes none of them.


def set_cluster_networks(cluster: Cluster, wanted: dict[int, tuple[bool, frozenset[str]]]
                         ) -> None:
    """Make ``cluster``'s networks exactly ``wanted`` (network pk -> (required, roles)), as
    the "Manage networks" table asks: attach, change and detach in one transaction.

    Every step runs (each in its own savepoint) so that every refusal is reported at once;
    when any step is refused, nothing is kept and `RuleViolationError` carries all the
    violations, with ``by_network`` mapping a network pk to its own. Order matters for
    roles: networks gaining a role are changed before those losing one (a role moves, it is
    never left without a holder), and detaching comes last.
    """
    by_network: dict[int, list[rules.Violation]] = {}

    def attempt(pk: int, action, *args, **kwargs) -> None:
        try:
            with transaction.atomic():
                action(*args, **kwargs)
        except RuleViolationError as exc:
            by_network.setdefault(pk, []).extend(exc.violations)

    with transaction.atomic():
        rows = {r.network_id: r for r in _assignments(cluster)}
        networks = {n.pk: n for n in Network.objects.filter(datacenter_id=cluster.datacenter_id)}
        for pk, (required, roles) in wanted.items():
            if pk not in rows and pk in networks:
                attempt(pk, attach_network, cluster, networks[pk], required=required,
                        roles=sorted(roles))
        changes = []
        for pk, (required, roles) in wanted.items():
            row = rows.get(pk)
            if row is not None and (row.required != required or row.roles != roles):
                changes.append((bool(roles - row.roles), pk, required, roles))
        # Gainers first: a role taken from its holder leaves that holder's own change
        # (without the role) consistent.
        for _gains, pk, required, roles in sorted(changes, key=lambda c: not c[0]):
            row = ClusterNetwork.objects.select_related("cluster", "network").get(
                pk=rows[pk].pk)
            attempt(pk, update_cluster_network, row, required=required, roles=roles)
        for pk, row in rows.items():
            if pk not in wanted:
                fresh = ClusterNetwork.objects.select_related("cluster", "network").get(
                    pk=row.pk)
                attempt(pk, detach_network, fresh)
        if by_network:
            error = RuleViolationError(v for vs in by_network.values() for v in vs)
            error.by_network = by_network
            raise error
