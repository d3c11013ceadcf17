"""Encryption at rest for the portal's secrets (its SSH private key, one-time passwords).

The key comes from ``NETPORTAL_SECRETS_KEY`` when set (a Fernet key, 32 url-safe base64
bytes), else it is derived from ``SECRET_KEY`` with HKDF, so the embedded default needs no
extra setting and a production deployment can rotate the two independently.
"""

from __future__ import annotations

import base64
import os

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _fernet() -> Fernet:
    explicit = os.environ.get("NETPORTAL_SECRETS_KEY", "").strip()
    if explicit:
        try:
            return Fernet(explicit.encode())
        except ValueError:
            raise ImproperlyConfigured(
                "NETPORTAL_SECRETS_KEY must be a Fernet key: 32 url-safe base64-encoded bytes "
                "(python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')") from None
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"netportal-secrets",
                   info=b"fernet").derive(settings.SECRET_KEY.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted: SECRET_KEY or NETPORTAL_SECRETS_KEY changed "
            "since it was written.") from None
