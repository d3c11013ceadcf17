"""Settings of the portal, read from environment variables.

The embedded default needs no services: SQLite and Celery's filesystem transport under a
local data folder (``NETPORTAL_DATA_DIR``, default ``./data``). ``DATABASE_URL`` selects
PostgreSQL; ``CELERY_BROKER_URL`` (or ``REDIS_URL``) selects Redis. A bad value stops the
start with a message that names the variable and says why.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use 1/0, true/false, yes/no")


def _env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}")
    return value


DATA_DIR = Path(os.environ.get("NETPORTAL_DATA_DIR") or BASE_DIR / "data").resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = _env_bool("DEBUG")


def _secret_key() -> str:
    """The secret key: from the environment, else generated once and kept in DATA_DIR."""
    key = os.environ.get("SECRET_KEY")
    if key:
        if len(key) < 32:
            raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters long")
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = [
    h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
    if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "portal",
    "networks",
    "hosts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "portal.audit.AuditMiddleware",  # who and which entry point, for the audit log
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.portal",
            ],
        },
    },
]


def _database() -> dict:
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "portal.sqlite3",
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    import dj_database_url

    if not url.startswith(("postgres://", "postgresql://", "sqlite://")):
        raise ImproperlyConfigured(
            f"DATABASE_URL must start with postgres://, postgresql:// or sqlite:// (got "
            f"{url.split(':', 1)[0]!r})"
        )
    try:
        return dj_database_url.parse(url, conn_max_age=60)
    except Exception as exc:  # dj_database_url raises several types for a bad URL
        raise ImproperlyConfigured(f"DATABASE_URL cannot be parsed: {exc}") from None


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Logins are throttled per user name and client address (portal/auth.py): the admin's, the
# operator pages' and any other that goes through django.contrib.auth.authenticate().
AUTHENTICATION_BACKENDS = ["portal.auth.ThrottledModelBackend"]
NETPORTAL_LOGIN_FAILURES = _env_int("NETPORTAL_LOGIN_FAILURES", 5, minimum=1)
NETPORTAL_LOGIN_WINDOW = _env_int("NETPORTAL_LOGIN_WINDOW", 60, minimum=1)  # seconds


def _caches() -> dict:
    """The login throttle's counters live in the cache: per process by default; set
    NETPORTAL_CACHE_URL=redis://... when several web processes serve the portal."""
    url = os.environ.get("NETPORTAL_CACHE_URL", "").strip()
    if not url:
        return {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    if not url.startswith(("redis://", "rediss://")):
        raise ImproperlyConfigured("NETPORTAL_CACHE_URL must start with redis:// or rediss://")
    return {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                        "LOCATION": url}}


CACHES = _caches()

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True  # serve vendored assets without a collectstatic step

LOGIN_URL = "login"  # the operator pages' login (portal/urls.py)
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# --- Web security ---------------------------------------------------------------------
# Always: no framing, no MIME sniffing, no referrer to other sites, HttpOnly session cookie.
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Served over HTTPS (NETPORTAL_TLS=1, DEBUG off): cookies only over TLS, HTTP redirected,
# HSTS. Off by default, because the embedded default serves plain http://127.0.0.1:8000,
# where secure cookies would never come back and a redirect would lead nowhere.
NETPORTAL_TLS = _env_bool("NETPORTAL_TLS") and not DEBUG
if NETPORTAL_TLS:
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = _env_int("NETPORTAL_HSTS_SECONDS", 31536000, minimum=1)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("NETPORTAL_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = _env_bool("NETPORTAL_HSTS_PRELOAD", True)
    # Behind a reverse proxy that terminates TLS and sets X-Forwarded-Proto (and strips it
    # from clients): without this the redirect would loop.
    if _env_bool("NETPORTAL_BEHIND_PROXY"):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["portal.api.permissions.ModelPermissions"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "portal.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "portal.api.exceptions.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Network portal API",
    "DESCRIPTION": "Logical networks, clusters and hosts; setup of host networks.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "BootProtocolEnum": "networks.choices.BootProtocol",
    },
}

# --- Celery -----------------------------------------------------------------------------


def _broker_url() -> str:
    url = (os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL") or "").strip()
    if not url:
        return "filesystem://"
    if not url.startswith(("redis://", "rediss://", "filesystem://", "memory://")):
        name = "CELERY_BROKER_URL" if os.environ.get("CELERY_BROKER_URL") else "REDIS_URL"
        raise ImproperlyConfigured(
            f"{name} must start with redis://, rediss:// or filesystem:// (got "
            f"{url.split(':', 1)[0]!r})"
        )
    return url


CELERY_BROKER_URL = _broker_url()
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = DATA_DIR / "broker"
    for sub in ("out", "processed", "control"):
        (_queue_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "out"),
        "data_folder_out": str(_queue_dir / "out"),
        "processed_folder": str(_queue_dir / "processed"),
        # Broadcast (control) messages too: kombu's default is ./control in the working
        # directory, i.e. the repository.
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
    }
else:
    # Above the longest task (an apply waits at most the connectivity timeout), so an
    # unacknowledged task is not redelivered while it still runs.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3 * 3600}

CELERY_TASK_IGNORE_RESULT = True  # jobs are rows in the database, not Celery results
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SOFT_TIME_LIMIT = _env_int("CELERY_TASK_SOFT_TIME_LIMIT", 3600, minimum=60)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 60
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {}

# --- The product's own settings ---------------------------------------------------------

NETPORTAL_CONNECTIVITY_TIMEOUT = _env_int("NETPORTAL_CONNECTIVITY_TIMEOUT", 120, minimum=1)
NETPORTAL_DEMO = _env_bool("NETPORTAL_DEMO")
# Hosts one job talks to at once (one thread each; SSH work only, no database connection).
NETPORTAL_FANOUT = _env_int("NETPORTAL_FANOUT", 128, minimum=1)
# A worker keeps a host's SSH connection open this many seconds after a job used it, for the
# next job (as OpenSSH's ControlPersist; 0: a new connection per job), and never reuses one
# older than NETPORTAL_SSH_KEEP_MAX seconds, so host keys are checked again at least that often.
NETPORTAL_SSH_KEEP = _env_int("NETPORTAL_SSH_KEEP", 60)
NETPORTAL_SSH_KEEP_MAX = _env_int("NETPORTAL_SSH_KEEP_MAX", 600, minimum=1)
# Seconds between two refreshes of every host by the periodic task (0: never).
NETPORTAL_REFRESH_INTERVAL = _env_int("NETPORTAL_REFRESH_INTERVAL", 300)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"paramiko": {"level": "WARNING"}},
}

# Seconds a job runner's lease lasts without renewal (a lost runner is noticed after this).
NETPORTAL_JOB_LEASE = _env_int("NETPORTAL_JOB_LEASE", 30, minimum=3)
CELERY_BEAT_SCHEDULE["requeue-jobs"] = {"task": "hosts.requeue_jobs", "schedule": 15.0}
if NETPORTAL_REFRESH_INTERVAL:
    CELERY_BEAT_SCHEDULE["refresh-hosts"] = {
        "task": "hosts.refresh_hosts", "schedule": float(NETPORTAL_REFRESH_INTERVAL)}
