"""Small hand-written tables for the list pages: column declarations, sorting, cells.

A table is a list of columns; each column reads one attribute path of a row and renders it
as a link, a badge, a yes/no mark or plain text. That is all the list pages need, so the
portal does without django-tables2 (one dependency less on a closed network).
"""

from __future__ import annotations

from collections.abc import Callable

from django.utils.html import conditional_escape, format_html_join
from django.utils.safestring import mark_safe

from portal.views import pk_url


def resolve(obj, accessor: str):
    """``obj.a.b`` for accessor ``a__b`` (None along the way stays None)."""
    value = obj
    for part in accessor.split("__"):
        if value is None:
            return None
        value = getattr(value, part)
        if callable(value) and not hasattr(value, "all"):
            value = value()
    return value


class Column:
    """One column: the attribute path it shows and, when sortable, the ORM ordering.

    ``link`` is a URL name taking the pk of ``link_accessor`` (the row itself by default),
    so a column can link to a related object ("cluster" links to the cluster page).
    """

    def __init__(self, accessor: str, header: str | None = None, *, order_by: str | None = None,
                 sortable: bool = True, link: str | None = None,
                 link_accessor: str | None = None, render: Callable | None = None):
        self.accessor = accessor
        self.header = header or accessor.split("__")[-1].replace("_", " ").capitalize()
        self.order_by = (order_by or accessor) if sortable else None
        self.link = link
        self.link_accessor = link_accessor
        self.render_fn = render

    def value(self, obj):
        return resolve(obj, self.accessor)

    def text(self, obj):
        value = self.value(obj)
        if self.render_fn is not None:
            return self.render_fn(obj, value)
        return "—" if value in (None, "") else value

    def cell(self, obj):
        # Plain escaping and pk_url, not format_html and reverse(): this runs for every
        # cell of every row (a 50-row page spent more in them than in its SQL).
        text = conditional_escape(self.text(obj))
        if self.link:
            target = resolve(obj, self.link_accessor) if self.link_accessor else obj
            if target is not None:
                href = conditional_escape(pk_url(self.link, target.pk))
                return mark_safe(f'<a href="{href}">{text}</a>')  # noqa: S308
        return text


class BooleanColumn(Column):
    """A yes/no mark that a screen reader reads as words."""

    def cell(self, obj):
        if self.value(obj):
            return mark_safe('<span class="text-success" title="Yes">&#10003;'  # noqa: S308
                             '<span class="visually-hidden">Yes</span></span>')
        return mark_safe('<span class="text-body-tertiary" title="No">&minus;'  # noqa: S308
                         '<span class="visually-hidden">No</span></span>')


class BadgeColumn(Column):
    """A choice field as a coloured badge: ``colours`` maps a value to a Bootstrap colour."""

    def __init__(self, accessor: str, header: str | None = None, *, colours: dict, **kwargs):
        super().__init__(accessor, header, **kwargs)
        self.colours = colours

    def cell(self, obj):
        value = self.value(obj)
        label = getattr(obj, f"get_{self.accessor}_display", lambda: value)()
        colour = conditional_escape(self.colours.get(value, "secondary"))
        return mark_safe(  # noqa: S308
            f'<span class="badge text-bg-{colour}">{conditional_escape(label)}</span>')


class ListColumn(Column):
    """A list value (labels, DNS servers) as small badges."""

    def cell(self, obj):
        items = self.value(obj) or []
        if hasattr(items, "all"):
            items = [str(i) for i in items.all()]
        if not items:
            return "—"
        return format_html_join(" ", '<span class="badge text-bg-light border">{}</span>',
                                ((i,) for i in items))


class Table:
    """Columns over a page of rows. Subclasses declare ``columns``; the list view sorts by
    ``?sort=<accessor>`` (``-`` for descending), only on declared sortable columns."""

    columns: list[Column] = []

    def __init__(self, rows, sort: str = ""):
        self.rows = rows
        self.sort = sort

    @classmethod
    def ordering_for(cls, sort: str) -> list[str] | None:
        """The ORM ordering of ``sort``, or None when it names no sortable column (a bad
        parameter is ignored, never an error)."""
        descending = sort.startswith("-")
        key = sort.lstrip("-")
        for column in cls.columns:
            if column.order_by and column.accessor == key:
                return [("-" if descending else "") + column.order_by, "pk"]
        return None

    def headers(self):
        """(header, sort value for a link or None, current direction) per column."""
        for column in self.columns:
            if not column.order_by:
                yield column.header, None, ""
                continue
            current = ""
            if self.sort == column.accessor:
                current = "asc"
            elif self.sort == f"-{column.accessor}":
                current = "desc"
            next_sort = f"-{column.accessor}" if current == "asc" else column.accessor
            yield column.header, next_sort, current

    def body(self):
        """(row, its cells as one ``<td>...</td>`` string): one template variable a row
        rather than a loop over its cells."""
        for obj in self.rows:
            yield obj, mark_safe("".join(  # noqa: S308  (cells are escaped HTML)
                f"<td>{column.cell(obj)}</td>" for column in self.columns))
