"""One way for every tier to say it cannot run here: skip with the probed reason, or fail
when CI promises that tier (``NETPORTAL_REQUIRE_LAB``, ``_BROWSER``, ``_QEMU`` set to 1)."""

import os

import pytest


def unavailable(reason: str, required_by: str) -> None:
    """Skip with ``reason``, or fail when the environment variable ``required_by`` is 1."""
    if os.environ.get(required_by) == "1":
        pytest.fail(f"{required_by}=1 but {reason}", pytrace=False)
    pytest.skip(reason)
