"""OpenSSH public keys as KeyService.CreateKey imports them.

A driver importing a key calls :func:`check_public_key` before sending it anywhere (after
its own checks of the name): clouds disagree on what they do with anything else (EC2
refuses a DSA key, moto failed on a private key with an answer that is not XML, which
became UNAVAILABLE, and imported the first line of two).
"""

from __future__ import annotations

import base64
import binascii
import struct

from .errors import ValidationError

#: The longest public key line taken (an RSA 16384-bit key is about 2,800 characters).
MAX_PUBLIC_KEY_LENGTH = 16384

#: Key types EC2 imports (and OpenSSH writes), with the fields of their wire-format blob
#: (RFC 4253 6.6, RFC 5656 3.1, RFC 8709 4): the type's name comes first.
KEY_FIELDS: dict[str, int] = {
    "ssh-rsa": 3,  # type, e, n
    "ssh-ed25519": 2,  # type, 32-byte key
    "ecdsa-sha2-nistp256": 3,  # type, curve, point
    "ecdsa-sha2-nistp384": 3,
    "ecdsa-sha2-nistp521": 3,
}
KEY_TYPES = frozenset(KEY_FIELDS)


def _fields(blob: bytes) -> list[bytes] | None:
    """The length-prefixed strings ``blob`` is made of, or None if it is not made of them."""
    fields: list[bytes] = []
    at = 0
    while at < len(blob):
        if len(blob) - at < 4:
            return None
        (length,) = struct.unpack(">I", blob[at : at + 4])
        at += 4
        if length > len(blob) - at:
            return None
        fields.append(blob[at : at + length])
        at += length
    return fields


def public_key_problem(text: str) -> str:
    """What makes ``text`` (surrounding white space aside) other than one OpenSSH public key
    line (``TYPE BASE64 [COMMENT]``, the blob of the named type); empty if nothing does."""
    line = text.strip()
    if len(line) > MAX_PUBLIC_KEY_LENGTH:
        return f"it is {len(line)} characters long, at most {MAX_PUBLIC_KEY_LENGTH} are taken"
    if "\n" in line or "\r" in line:
        return "it holds more than one line"
    if "PRIVATE KEY" in line:
        return "it is a private key: give only the public half"
    words = line.split()
    if not words or words[0] not in KEY_TYPES:
        found = words[0][:40] if words else ""
        return (
            f"it does not start with a supported key type ({', '.join(sorted(KEY_TYPES))}), "
            f"but with {found!r} (options before the type are not taken)"
        )
    if len(words) < 2:
        return "the base64 key data is missing after the type"
    try:
        blob = base64.b64decode(words[1], validate=True)
    except (binascii.Error, ValueError):
        return "the key data is not base64"
    fields = _fields(blob)
    if fields is None or not fields or fields[0] != words[0].encode("ascii"):
        return f"the key data is not a {words[0]} key"
    if len(fields) != KEY_FIELDS[words[0]] or not all(fields[1:]):
        return f"the key data is not a complete {words[0]} key"
    if words[0] == "ssh-ed25519" and len(fields[1]) != 32:
        return "the key data is not a complete ssh-ed25519 key"
    if words[0].startswith("ecdsa-") and fields[1] != words[0].rsplit("-", 1)[1].encode():
        return f"the key data names curve {fields[1][:20]!r}, not that of {words[0]}"
    return ""


def check_public_key(text: str) -> None:
    """INVALID_ARGUMENT (VALIDATION_FAILED, metadata option ``public_key``) saying what is
    wrong, unless ``text`` is one OpenSSH public key line."""
    if problem := public_key_problem(text):
        raise ValidationError(
            f"public_key is not an OpenSSH public key line (TYPE BASE64 [COMMENT]): {problem}",
            metadata={"option": "public_key"},
        )
