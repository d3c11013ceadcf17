"""Forms of the host, VM and vNIC pages. No rules here: the models and hosts/services.py
decide, and the base view shows what they refuse."""

from __future__ import annotations

from django import forms

from hosts.models import VM, Host, Vnic
from networks.models import VnicProfile
from portal.forms import PortalForm, PortalModelForm, SearchSelect


class HostForm(PortalModelForm):
    """A new host: where to reach it, and optionally a one-time password that installs the
    portal's key (kept encrypted until the install job used it, then erased)."""

    password = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput(render_value=False),
        label="One-time root password",
        help_text="Optional: used once to install the portal's SSH key, then erased. Leave "
                  "empty when the key is already in authorized_keys.")

    class Meta:
        model = Host
        fields = ["name", "address", "ssh_port", "ssh_user", "cluster", "expected_fingerprint"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            # Moving a host between clusters changes its required networks: not an edit.
            del self.fields["cluster"]
            del self.fields["password"]


class VMForm(PortalModelForm):
    class Meta:
        model = VM
        fields = ["name", "cluster", "host", "status"]
        # Not every host as an option: the chosen one, and a search among the cluster's.
        widgets = {"host": SearchSelect(Host.objects.all(), "api:host-list",
                                        depends="cluster")}


class VnicForm(PortalModelForm):
    """A vNIC of ``vm``: its profile chosen among the VM networks implemented on the VM's
    host (any VM network of the data center when the VM has no host; the rules judge)."""

    class Meta:
        model = Vnic
        fields = ["name", "profile", "mac", "type", "linked"]

    def __init__(self, *args, vm: VM, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.vm = vm
        profiles = VnicProfile.objects.filter(
            network__datacenter_id=vm.cluster.datacenter_id,
            network__vm_network=True).select_related("network")
        if vm.host_id:
            profiles = profiles.filter(network__attachments__host_id=vm.host_id)
            self.fields["profile"].help_text = (
                f"Profiles of the VM networks implemented on host {vm.host}.")
        self.fields["profile"].queryset = profiles.order_by("network__name", "name")
        self.fields["profile"].label_from_instance = (
            lambda p: p.name if p.name == p.network.name else f"{p.name} ({p.network.name})")


class ApproveKeyForm(PortalForm):
    fingerprint = forms.CharField(max_length=100, label="Fingerprint (SHA256:...)")
