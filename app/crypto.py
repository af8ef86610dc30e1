"""Personal data at rest: AES-GCM encryption bound to the tenant, and keyed lookup hashes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.config import Settings

_VERSION = b"\x01"
_NONCE_BYTES = 12


@dataclass(frozen=True)
class Keys:
    encryption: bytes
    lookup: bytes


def _decode_key(value: str, name: str) -> bytes:
    raw = base64.b64decode(value)
    if len(raw) != 32:
        raise ValueError(f"{name} must be 32 bytes, base64-encoded")
    return raw


def load_keys(settings: Settings) -> Keys:
    """Keys from settings; in development, a key file generated once in the data folder."""
    if settings.encryption_key and settings.lookup_key:
        return Keys(
            _decode_key(settings.encryption_key, "KEZHAN_ENCRYPTION_KEY"),
            _decode_key(settings.lookup_key, "KEZHAN_LOOKUP_KEY"),
        )
    return _dev_keys(settings.data_dir / "dev-keys.json")


def _dev_keys(path: Path) -> Keys:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        generated = {
            "encryption_key": base64.b64encode(os.urandom(32)).decode(),
            "lookup_key": base64.b64encode(os.urandom(32)).decode(),
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(generated, handle)
    stored = json.loads(path.read_text())
    return Keys(
        _decode_key(stored["encryption_key"], "encryption_key"),
        _decode_key(stored["lookup_key"], "lookup_key"),
    )


class Vault:
    """Encrypts, decrypts and hashes personal data for one deployment's keys."""

    def __init__(self, keys: Keys) -> None:
        self._aead = AESGCM(keys.encryption)
        self._lookup_key = keys.lookup

    def encrypt(self, tenant_id: uuid.UUID, plaintext: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), tenant_id.bytes)
        return _VERSION + nonce + sealed

    def decrypt(self, tenant_id: uuid.UUID, blob: bytes) -> str:
        if blob[:1] != _VERSION:
            raise ValueError("unknown ciphertext version")
        nonce, sealed = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        return self._aead.decrypt(nonce, sealed, tenant_id.bytes).decode()

    def lookup_hash(self, tenant_id: uuid.UUID, kind: str, normalized: str) -> bytes:
        """Per-tenant keyed hash: equal values match within a tenant, never across tenants."""
        message = tenant_id.bytes + kind.encode() + b"\x00" + normalized.encode()
        return hmac.new(self._lookup_key, message, hashlib.sha256).digest()
