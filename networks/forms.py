"""Forms of the networks pages. No rules here: the models' ``clean()`` and the services
(networks/services.py) decide, and the base view shows what they refuse."""

from __future__ import annotations

from django import forms

from networks.models import Cluster, DataCenter, Network
from portal.forms import PortalModelForm


class CommaListField(forms.CharField):
    """A list typed as ``a, b, c`` (DNS servers): the rules judge each item."""

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value)
        return value

    def to_python(self, value):
        text = super().to_python(value) or ""
        return [item.strip() for item in text.replace(";", ",").split(",") if item.strip()]


class DataCenterForm(PortalModelForm):
    class Meta:
        model = DataCenter
        fields = ["name", "description"]


class ParentFixedOnEdit(PortalModelForm):
    """The parent (``parent_field``) is chosen at creation only: a cluster or network never
    moves to another data center (its assignments would be left behind)."""

    parent_field = "datacenter"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            del self.fields[self.parent_field]


class ClusterForm(ParentFixedOnEdit):
    class Meta:
        model = Cluster
        fields = ["datacenter", "name", "description", "mac_pool_start", "mac_pool_end"]
        labels = {"datacenter": "Data center", "mac_pool_start": "MAC pool start",
                  "mac_pool_end": "MAC pool end"}


class NetworkForm(ParentFixedOnEdit):
    dns_servers = CommaListField(required=False, label="DNS servers",
                                 help_text="Comma-separated; used on the default-route network.")

    class Meta:
        model = Network
        fields = ["datacenter", "name", "description", "vm_network", "vlan", "mtu", "stp",
                  "label", "dns_servers", "qos_outbound_average"]
        labels = {"datacenter": "Data center"}


class ClusterNetworksForm(forms.Form):
    """The cluster's "Manage networks" table: per data-center network an *assigned* and a
    *required* box, and per role one radio group across the rows (roles are exclusive).

    It checks only that the input is coherent (a role goes to an assigned network); the
    services judge the rest.
    """

    def __init__(self, cluster: Cluster, networks, assignments, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from networks.choices import ClusterRole

        self.cluster = cluster
        self.networks = list(networks)
        self.roles = list(ClusterRole.choices)
        by_network = {a.network_id: a for a in assignments}
        holders = {role: a.network_id for a in assignments for role in a.roles}
        for network in self.networks:
            row = by_network.get(network.pk)
            self.fields[f"assigned_{network.pk}"] = forms.BooleanField(
                required=False, initial=row is not None, label=f"Assign {network.name}")
            self.fields[f"required_{network.pk}"] = forms.BooleanField(
                required=False, initial=row.required if row else True,
                label=f"{network.name} is required")
        choices = [(str(n.pk), n.name) for n in self.networks]
        for role, label in self.roles:
            self.fields[f"role_{role}"] = forms.TypedChoiceField(
                choices=choices, coerce=int, required=True, widget=forms.RadioSelect,
                initial=str(holders[role]) if role in holders else None, label=label)

    def clean(self):
        data = super().clean()
        for role, label in self.roles:
            pk = data.get(f"role_{role}")
            if pk is not None and not data.get(f"assigned_{pk}"):
                name = next(n.name for n in self.networks if n.pk == pk)
                self.add_error(f"role_{role}", f"The {label.lower()} role goes to a network "
                                               f"of the cluster: assign {name} first.")
        return data

    def wanted(self) -> dict[int, tuple[bool, frozenset[str]]]:
        """network pk -> (required, roles), for `networks.services.set_cluster_networks`."""
        data = self.cleaned_data
        return {
            n.pk: (bool(data.get(f"required_{n.pk}")),
                   frozenset(role for role, _ in self.roles if data.get(f"role_{role}") == n.pk))
            for n in self.networks if data.get(f"assigned_{n.pk}")
        }

    def rows(self):
        """(network, assigned field, required field, [(role, radio)]) for the template."""
        radios = {role: {str(r.data["value"]): r for r in self[f"role_{role}"]}
                  for role, _ in self.roles}
        for network in self.networks:
            yield (network, self[f"assigned_{network.pk}"], self[f"required_{network.pk}"],
                   [(role, radios[role][str(network.pk)]) for role, _ in self.roles])
