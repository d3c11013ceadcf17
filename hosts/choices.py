"""Choice sets of hosts, jobs and VMs. Code compares these constants, never bare strings."""

from django.db import models


class HostStatus(models.TextChoices):
    INSTALLING = "installing", "Installing"
    UP = "up", "Up"
    NON_OPERATIONAL = "non_operational", "NonOperational"
    NON_RESPONSIVE = "non_responsive", "NonResponsive"
    MAINTENANCE = "maintenance", "Maintenance"
    INSTALL_FAILED = "install_failed", "InstallFailed"


HOST_STATUS_BADGES = {
    HostStatus.INSTALLING: "info",
    HostStatus.UP: "success",
    HostStatus.NON_OPERATIONAL: "warning",
    HostStatus.NON_RESPONSIVE: "danger",
    HostStatus.MAINTENANCE: "secondary",
    HostStatus.INSTALL_FAILED: "danger",
}


class HostKeyState(models.TextChoices):
    """Trust in the SSH host key the host presented (DESIGN.md, "SSH and workers")."""

    UNKNOWN = "unknown", "Not yet seen"
    PENDING = "pending", "Pending approval"
    APPROVED = "approved", "Approved"
    CHANGED = "changed", "Changed (refused)"


class JobKind(models.TextChoices):
    ADD_HOST = "add_host", "Add host"
    SETUP_NETWORKS = "setup_networks", "Setup host networks"
    SYNC = "sync", "Sync networks"
    REFRESH = "refresh", "Refresh capabilities"
    NETWORK_CHANGE = "network_change", "Push network change"
    PREVIEW = "preview", "Preview changes"


class JobStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMMITTED = "committed", "Committed"
    PARTIAL = "partial", "Partly failed"
    FAILED = "failed", "Failed"


JOB_FINAL_STATUSES = frozenset({JobStatus.COMMITTED, JobStatus.PARTIAL, JobStatus.FAILED})


class JobHostStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    AWAITING_CONFIRMATION = "awaiting_confirmation", "Awaiting confirmation"
    COMMITTED = "committed", "Committed"
    ROLLED_BACK = "rolled_back", "Rolled back"
    FAILED = "failed", "Failed"


JOB_HOST_ACTIVE_STATUSES = (JobHostStatus.RUNNING, JobHostStatus.AWAITING_CONFIRMATION)
JOB_HOST_FINAL_STATUSES = frozenset(
    {JobHostStatus.COMMITTED, JobHostStatus.ROLLED_BACK, JobHostStatus.FAILED}
)


class LogLevel(models.TextChoices):
    DEBUG = "debug", "Debug"
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"


class VmStatus(models.TextChoices):
    UP = "up", "Up"
    DOWN = "down", "Down"
