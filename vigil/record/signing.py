"""Ed25519 keys for signing export manifests: create once, keep private (0600).

The private key is PEM (PKCS#8, unencrypted: the recorder signs unattended, so the file's
permissions are its protection, and a group/other-readable key is refused). The fingerprint
is ``SHA256:<hex>`` of the raw 32-byte public key, short enough to read over the phone.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vigil.errors import AuthError, StorageError


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The signing key in ``path``, created there (mode 0600) when the file does not exist."""
    if not path.exists():
        return _create(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise AuthError(
            f"signing key {path} is readable by others (mode {mode:o}); run chmod 600 {path}"
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as exc:
        raise AuthError(
            f"{path} is not a PEM private key ({exc}); move it away to make a new one"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise AuthError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def _create(path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two processes creating the key at once must not overwrite each other.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, pem)
        finally:
            os.close(fd)
    except FileExistsError:
        return load_or_create_key(path)
    except OSError as exc:
        raise StorageError(f"cannot create signing key {path} ({exc}); check the folder") from exc
    return key


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(key: Ed25519PublicKey) -> str:
    return "SHA256:" + hashlib.sha256(raw_public(key)).hexdigest()


def public_key_b64(key: Ed25519PublicKey) -> str:
    return base64.b64encode(raw_public(key)).decode("ascii")


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    """A public key from base64 of its raw 32 bytes; ``ValueError`` when malformed."""
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A trusted public key from a PEM file, a private-key PEM file, or base64 raw bytes."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AuthError(f"cannot read public key {path} ({exc})") from exc
    try:
        if b"PRIVATE KEY" in data:
            private = serialization.load_pem_private_key(data, password=None)
            if isinstance(private, Ed25519PrivateKey):
                return private.public_key()
        elif b"PUBLIC KEY" in data:
            public = serialization.load_pem_public_key(data)
            if isinstance(public, Ed25519PublicKey):
                return public
        else:
            return public_key_from_b64(data.decode("ascii").strip())
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise AuthError(f"{path} is not an Ed25519 public key ({exc})") from exc
    raise AuthError(f"{path} is not an Ed25519 key")


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def signature_valid(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True
