"""Limits of the domain, each with the reason it exists (see shared RULES.md)."""

DATACENTER_NAME_MAX = 40  # the reference engine's column width
CLUSTER_NAME_MAX = 40
NETWORK_NAME_MAX = 256
DESCRIPTION_MAX = 4000

# Linux IFNAMSIZ is 16 bytes including the terminating NUL.
IFNAME_MAX = 15
ON_HOST_NAME_PATTERN = r"^[0-9A-Za-z_-]{1,15}$"
ON_HOST_NAME_PREFIX = "on"  # + 13 alphanumerics of the network UUID = 15 characters
ON_HOST_UUID_CHARS = 13

VLAN_MIN = 0
VLAN_MAX = 4094  # 4095 is reserved by IEEE 802.1Q

MTU_DEFAULT = 1500  # what MTU 0 ("default") means on a host
MTU_MIN = 68  # RFC 791: every IPv4 module must forward a 68-octet datagram
MTU_MAX = 65535  # the kernel's upper bound for a link MTU

DNS_SERVERS_MAX = 3  # resolv.conf honours at most three nameservers (MAXNS)

LABEL_PATTERN = r"^[0-9A-Za-z_-]+$"
LABEL_MAX = 50
BOND_NAME_PATTERN = r"^bond\w+$"
BOND_MIN_SLAVES = 2

MANAGEMENT_NETWORK_NAME = "ovirtmgmt"
MANAGEMENT_NETWORK_DESCRIPTION = "Management Network"

# Applying to a host (RULES.md "Applying to a host").
CONNECTIVITY_TIMEOUT_DEFAULT = 120
CONNECTIVITY_TIMEOUT_MIN = 1
CONNECTIVITY_TIMEOUT_MAX = 3600

# Plain values shared by the pure rules and the Django choice sets (networks/choices.py
# builds its TextChoices from these, so rules.py needs no Django import).
ROLE_MANAGEMENT = "management"
ROLE_DISPLAY = "display"
ROLE_MIGRATION = "migration"
ROLE_DEFAULT_ROUTE = "default_route"
ROLES = (ROLE_MANAGEMENT, ROLE_DISPLAY, ROLE_MIGRATION, ROLE_DEFAULT_ROUTE)

BOOT_NONE = "none"
BOOT_DHCP = "dhcp"
BOOT_STATIC = "static"

BOND_MODE_LACP = 4
# mode number -> (kernel name, default options): RULES.md "bond mode".
BOND_MODES = {
    0: "balance-rr",
    1: "active-backup",
    2: "balance-xor",
    3: "broadcast",
    4: "802.3ad",
    5: "balance-tlb",
    6: "balance-alb",
}
# A VM network's bridge needs a bond that keeps one MAC per peer; these modes rewrite or
# spread source MACs and break bridged traffic (RULES.md, setup rule 12).
BOND_MODES_NOT_FOR_VM_NETWORKS = frozenset({0, 5, 6})

VNIC_TYPES = ("virtio", "e1000", "e1000e", "rtl8139")
