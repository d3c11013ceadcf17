"""Demo lab: real hosts (network namespaces with their own sshd) registered in the portal.

    sudo .venv/bin/python manage.py lab up 3     # build 3 hosts and add them to the portal
    sudo .venv/bin/python manage.py lab down     # remove the demo lab (and its hosts)

Needs root, iproute2 and openssh-server. Hosts live on 198.18.0.0/15 only (tests/lab.py).
The running portal's worker installs them: watch them go from Installing to Up.
"""

import atexit

from django.core.management.base import BaseCommand, CommandError

from hosts import services as host_services
from hosts import ssh
from hosts.models import Host
from networks import services as network_services
from networks.models import Cluster, DataCenter
from tests import lab as lab_module

DEMO_DC, DEMO_CLUSTER = "lab", "lab"


class Command(BaseCommand):
    help = "Build a lab of real hosts and register them in the portal, or remove it."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        up = sub.add_parser("up")
        up.add_argument("hosts", type=int, nargs="?", default=3)
        up.add_argument("--nics", type=int, default=3)
        sub.add_parser("down")

    def handle(self, *args, action, **options):
        reason = lab_module.require_lab_tools()
        if reason:
            raise CommandError(reason)
        if action == "up":
            return self.up(options["hosts"], options["nics"])
        return self.down()

    def up(self, count: int, nics: int) -> None:
        lab = lab_module.Lab(count, nics=nics, detached=True).up()
        # The lab outlives this command (the portal's worker installs its hosts now); only
        # `lab down` removes it.
        atexit.unregister(lab.down)
        lab.authorize(ssh.public_key_line())
        datacenter = DataCenter.objects.filter(name=DEMO_DC).first() or \
            network_services.create_datacenter(DataCenter(name=DEMO_DC,
                                                          description="Demo lab hosts"))
        cluster = Cluster.objects.filter(datacenter=datacenter, name=DEMO_CLUSTER).first() or \
            network_services.create_cluster(Cluster(datacenter=datacenter, name=DEMO_CLUSTER))
        for lab_host in lab.hosts:
            host_services.create_host(Host(
                name=f"{lab.prefix}-{lab_host.name}", address=lab_host.address,
                cluster=cluster, expected_fingerprint=lab_host.fingerprint))
            self.stdout.write(f"added {lab.prefix}-{lab_host.name} at {lab_host.address} "
                              f"({lab_host.fingerprint})")
        self.stdout.write(f"Lab {lab.prefix} is up; the worker installs its hosts now. "
                          "Remove it with: manage.py lab down")

    def down(self) -> None:
        """Remove the demo labs this portal registered (their hosts are named after them),
        never a lab someone else started."""
        names = list(Host.objects.values_list("name", flat=True))
        for data in lab_module.registered_labs():
            if not data.get("detached") or not any(
                    n.startswith(f"{data['prefix']}-") for n in names):
                continue
            lab_module.Lab.from_registry(data).down()
            deleted = Host.objects.filter(name__startswith=f"{data['prefix']}-")
            names = list(deleted.values_list("name", flat=True))
            deleted.delete()
            self.stdout.write(f"removed lab {data['prefix']} and hosts {', '.join(names)}")
