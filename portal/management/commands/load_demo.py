"""Load a realistic demo inventory (marked as demo data everywhere it shows)."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from hosts import services as host_services
from hosts.choices import HostKeyState, HostStatus
from hosts.models import Host, HostNic
from networks import rules
from networks import services as network_services
from networks.models import Cluster, DataCenter, Network

# data center -> cluster -> number of hosts (8 in all)
DEMO_DATACENTERS = {
    "demo-tokyo": {"prod-a": 3, "prod-b": 3},
    "demo-osaka": {"dr": 2},
}
# name, vm network, vlan, mtu, label
DEMO_NETWORKS = [
    ("vm-prod", True, 100, 0, "prod"),
    ("storage", False, 200, 9000, ""),
    ("migration", False, 300, 0, ""),
    ("display", True, 400, 0, ""),
]


class Command(BaseCommand):
    help = "Load the demo inventory: 2 data centers, 3 clusters, networks and 8 hosts."

    def handle(self, *args, **options):
        if DataCenter.objects.filter(name__in=DEMO_DATACENTERS).exists():
            raise CommandError("The demo inventory is already loaded.")
        with transaction.atomic():
            hosts = self.load()
        self.stdout.write(f"Demo inventory loaded: {len(hosts)} hosts "
                          f"({', '.join(h.name for h in hosts)}).")

    def load(self) -> list[Host]:
        hosts = []
        number = 0
        for dc_name, cluster_names in DEMO_DATACENTERS.items():
            dc = network_services.create_datacenter(DataCenter(
                name=dc_name, description="Demo data center", is_demo=True))
            networks = {
                name: network_services.create_network(Network(
                    datacenter=dc, name=name, vm_network=vm, vlan=vlan, mtu=mtu, label=label,
                    description=f"Demo {name} network"))
                for name, vm, vlan, mtu, label in DEMO_NETWORKS
            }
            for cluster_name, host_count in cluster_names.items():
                cluster = network_services.create_cluster(Cluster(
                    datacenter=dc, name=cluster_name, description="Demo cluster"))
                network_services.attach_network(cluster, networks["vm-prod"])
                network_services.attach_network(cluster, networks["storage"])
                network_services.attach_network(cluster, networks["migration"],
                                                required=False, roles={"migration"})
                network_services.attach_network(cluster, networks["display"],
                                                required=False, roles={"display"})
                for _ in range(host_count):
                    number += 1
                    hosts.append(self.demo_host(cluster, number))
        return hosts

    def demo_host(self, cluster: Cluster, number: int) -> Host:
        # Documentation addresses (198.18.0.0/15): the portal never reaches demo hosts.
        host = Host.objects.create(
            name=f"demo-host{number:02d}", address=f"198.18.100.{number}", cluster=cluster,
            status=HostStatus.UP, host_key_state=HostKeyState.APPROVED)
        for index in range(4):
            HostNic.objects.create(host=host, name=f"eth{index}", speed=10000,
                                   mac=f"52:54:00:00:{number:02x}:{index:02x}")
        request = rules.SetupRequest(
            attachments=(
                rules.AttachmentData("ovirtmgmt", "eth0", rules.IpConfig(
                    "static", f"198.18.100.{number}", "255.255.255.0", "198.18.100.254")),
                rules.AttachmentData("migration", "eth1", rules.IpConfig(
                    "static", f"198.18.101.{number}", "255.255.255.0")),
                rules.AttachmentData("display", "eth1", rules.IpConfig("dhcp")),
            ),
        )
        if number % 2:  # every other host bonds eth2+eth3 and carries storage and vm-prod
            request = rules.SetupRequest(
                bonds=(rules.BondData("bond0", 4, rules.default_bond_options(4),
                                      ("eth2", "eth3")),),
                attachments=request.attachments + (
                    rules.AttachmentData("storage", "bond0", rules.IpConfig(
                        "static", f"198.18.102.{number}", "24")),
                ),
                labels={"bond0": frozenset({"prod"})},
            )
        outcome = host_services.setup_networks(host, request, push=False)
        if not outcome.ok:
            raise CommandError("; ".join(v.message for v in outcome.violations))
        return host
