"""Choice sets of the networks domain. Code compares these constants, never bare strings.

Values come from networks/constants.py so that the pure rules (networks/rules.py) and the
models agree without the rules importing Django.
"""

from django.db import models

from networks import constants as c


class ClusterRole(models.TextChoices):
    """Roles a network can hold in a cluster; each is held by exactly one network."""

    MANAGEMENT = c.ROLE_MANAGEMENT, "Management"
    DISPLAY = c.ROLE_DISPLAY, "Display"
    MIGRATION = c.ROLE_MIGRATION, "Migration"
    DEFAULT_ROUTE = c.ROLE_DEFAULT_ROUTE, "Default route"


class BootProtocol(models.TextChoices):
    NONE = c.BOOT_NONE, "None"
    DHCP = c.BOOT_DHCP, "DHCP"
    STATIC = c.BOOT_STATIC, "Static"


class BondMode(models.IntegerChoices):
    """Linux bonding modes by number, as the reference system stores them."""

    BALANCE_RR = 0, "0 - balance-rr"
    ACTIVE_BACKUP = 1, "1 - active-backup"
    BALANCE_XOR = 2, "2 - balance-xor"
    BROADCAST = 3, "3 - broadcast"
    LACP = 4, "4 - 802.3ad (LACP)"
    BALANCE_TLB = 5, "5 - balance-tlb"
    BALANCE_ALB = 6, "6 - balance-alb"


class VnicType(models.TextChoices):
    VIRTIO = "virtio", "VirtIO"
    E1000 = "e1000", "e1000"
    E1000E = "e1000e", "e1000e"
    RTL8139 = "rtl8139", "rtl8139"
