from rest_framework.pagination import LimitOffsetPagination


class Pagination(LimitOffsetPagination):
    """Limit/offset pages (``?limit=&offset=``), capped so one call cannot dump a fleet."""

    default_limit = 50
    max_limit = 1000
