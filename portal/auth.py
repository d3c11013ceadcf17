"""Login throttling: after a few wrong passwords for one user name from one address, every
login of that pair is refused (even with the right password) until the window passes.

It sits in the authentication backend, so every login that goes through
``django.contrib.auth.authenticate()`` is covered: the Django admin's, the operator pages'
and any later one. The login forms (`ThrottledAuthenticationForm`, and the admin's) say why
instead of the generic "wrong password". Counters live in the cache (settings.CACHES).
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError

THROTTLED_MESSAGE = ("Too many failed logins for this user from your address; try again in "
                     "a minute.")


def _key(request, username) -> str:
    address = (request.META.get("REMOTE_ADDR", "") if request is not None else "") or "-"
    raw = f"{(username or '').strip().lower()}|{address}".encode()
    return "login-failures:" + hashlib.sha256(raw).hexdigest()


def is_throttled(request, username) -> bool:
    return (cache.get(_key(request, username)) or 0) >= settings.NETPORTAL_LOGIN_FAILURES


def record_failure(request, username) -> None:
    key = _key(request, username)
    cache.add(key, 0, timeout=settings.NETPORTAL_LOGIN_WINDOW)  # the window starts here
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=settings.NETPORTAL_LOGIN_WINDOW)


class ThrottledModelBackend(ModelBackend):
    """Django's model backend, refusing a throttled user name and address."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            from django.contrib.auth import get_user_model

            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if is_throttled(request, username):
            raise PermissionDenied(THROTTLED_MESSAGE)  # authenticate() then tries no other
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            record_failure(request, username)
        else:
            cache.delete(_key(request, username))
        return user


class ThrottleMessageMixin:
    def clean(self):
        username = self.cleaned_data.get("username")
        if username is not None and is_throttled(self.request, username):
            raise ValidationError(THROTTLED_MESSAGE, code="throttled")
        try:
            return super().clean()
        except ValidationError:
            if username is not None and is_throttled(self.request, username):
                raise ValidationError(THROTTLED_MESSAGE, code="throttled") from None
            raise


class ThrottledAuthenticationForm(ThrottleMessageMixin, AuthenticationForm):
    """The operator pages' login form (LoginView(authentication_form=...))."""


class ThrottledAdminAuthenticationForm(ThrottleMessageMixin, AdminAuthenticationForm):
    """The Django admin's login form."""
