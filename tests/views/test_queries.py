"""Query budgets of the list pages: a page of about 20 rows costs a fixed number of
queries (an N+1 shows up here as a failure)."""

import pytest
from django.urls import reverse

# Session + user + the page's own queries; the same budget holds for 5 rows or 50.
BUDGET = 10


@pytest.fixture
def many(cluster, make_host, make_network, admin_user):
    from hosts import services as host_services
    from hosts.choices import JobKind
    from hosts.models import VM
    from networks import services
    from networks.models import Cluster, DataCenter

    for i in range(20):
        dc = services.create_datacenter(DataCenter(name=f"dc-{i:02d}"))
        services.create_cluster(Cluster(datacenter=dc, name=f"cl-{i:02d}"))
        make_network(f"net-{i:02d}", cluster, required=False)
    for i in range(20):  # after the networks: attaching one re-checks every host
        host = make_host(cluster, name=f"h{i:02d}")
        VM.objects.create(name=f"vm{i:02d}", cluster=cluster, host=host)
        host_services.queue_job(JobKind.REFRESH, [host], user=admin_user)


LIST_PAGES = ["networks:datacenter_list", "networks:cluster_list", "networks:network_list",
              "hosts:host_list", "hosts:vm_list", "hosts:job_list"]
DETAIL_PAGES = ["networks:cluster", "hosts:host", "networks:cluster_networks",
                "hosts:host_setup"]


def test_list_pages_query_budget(many, admin_client, django_assert_max_num_queries):
    """One inventory for every page: building 20 rows of everything is the slow part."""
    admin_client.get(reverse("dashboard"))  # the session's first load is not the page's
    for name in LIST_PAGES:
        with django_assert_max_num_queries(BUDGET, info=name):
            response = admin_client.get(reverse(name))
        assert response.status_code == 200
        assert len(response.context["page"].object_list) >= 20, name
        filtered = admin_client.get(reverse(name), {"q": "0", "sort": "-name"})
        assert filtered.status_code == 200
    with django_assert_max_num_queries(BUDGET, info="dashboard"):
        assert admin_client.get(reverse("dashboard")).status_code == 200


def test_detail_pages_query_budget(many, cluster, admin_client, django_assert_max_num_queries):
    """Detail pages show related rows of a fixed number of tables: a fixed budget."""
    from hosts.models import Host

    host = Host.objects.first()
    for name in DETAIL_PAGES:
        pk = cluster.pk if name.startswith("networks") else host.pk
        with django_assert_max_num_queries(25, info=name):
            assert admin_client.get(reverse(name, args=[pk])).status_code == 200
