"""Fake key material for the mock driver: generated key pairs and fingerprints.

Nothing here is real cryptography: the mock only has to return strings shaped like what a
cloud returns (a PEM private key, an OpenSSH public key, an MD5 fingerprint), random so
clients cannot rely on fixed values.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import secrets
import struct
import textwrap

PEM_HEADER = "-----BEGIN RSA PRIVATE KEY-----"
PEM_FOOTER = "-----END RSA PRIVATE KEY-----"


def fake_key_pair(comment: str) -> tuple[str, str]:
    """A random (private PEM, OpenSSH public key) pair shaped like an RSA key pair."""
    private_der = secrets.token_bytes(608)
    body = "\n".join(textwrap.wrap(base64.b64encode(private_der).decode("ascii"), 64))
    private_pem = f"{PEM_HEADER}\n{body}\n{PEM_FOOTER}\n"
    return private_pem, public_key_from_seed(secrets.token_bytes(256), comment)


def public_key_from_seed(modulus: bytes, comment: str) -> str:
    """An OpenSSH ``ssh-rsa`` line whose blob has the real wire layout (type, e, n)."""
    blob = b"".join(
        struct.pack(">I", len(part)) + part for part in (b"ssh-rsa", b"\x01\x00\x01", modulus)
    )
    return f"ssh-rsa {base64.b64encode(blob).decode('ascii')} {comment}".strip()


def fingerprint(public_key: str) -> str:
    """Colon-separated MD5 of the key material, as ``ssh-keygen -E md5`` and EC2 show it:
    the decoded blob of an OpenSSH line, else the text itself."""
    material = public_key.strip().encode("utf-8")
    words = public_key.split()
    if len(words) >= 2:
        # Not base64: fingerprint the text itself.
        with contextlib.suppress(binascii.Error, ValueError):
            material = base64.b64decode(words[1], validate=True)
    digest = hashlib.md5(material, usedforsecurity=False).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
