from django.conf import settings


def portal(request):
    """Values every page needs: whether the inventory is demo data."""
    return {"NETPORTAL_DEMO": settings.NETPORTAL_DEMO or _demo_loaded()}


def _demo_loaded() -> bool:
    from networks.models import DataCenter

    return DataCenter.objects.filter(is_demo=True).exists()
