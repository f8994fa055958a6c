"""Pseudonymization of user ids, sealing of rejected lines, the id key's
fingerprint and masking of contact details in review text."""

from __future__ import annotations

import hashlib
import hmac
import os
import re

USER_PREFIX = "u_"

# An e-mail address: local part, @, a dotted domain.
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# A phone number: "+" and a country code followed by digit groups ("+44 20 7946 0958"),
# or the North American shape ("555-123-4567", "(555) 123-4567", "1-800-555-1234").
# Digit runs with other shapes are left alone: in reviews they are part numbers
# ("099-0818-300"), prices and dates far more often than phones.
PHONE_RE = re.compile(
    r"(?<![\w.+])(?:\+\d{1,3}(?:[\s.-]?\(?\d{2,4}\)?){2,4}"
    r"|(?:1[\s.-])?(?:\(\d{3}\)\s?|\d{3}[.-])\d{3}[.-]\d{4})(?![\w])"
)


# Cheap tests that rule most texts out before the full patterns run (ingest speed).
_MAYBE_PHONE_RE = re.compile(r"\+\d|\d{3}[.-]\d{4}")


def pseudonymize(raw_id: str, key: bytes) -> str:
    """The keyed HMAC-SHA256 pseudonym of a shop's user id (96 bits, hex)."""
    raw = raw_id.strip()
    if not raw:
        raise ValueError("empty user id")
    return USER_PREFIX + hmac.new(key, raw.encode("utf-8"), hashlib.sha256).hexdigest()[:24]


def mask_contacts(text: str) -> str:
    """Replace e-mail addresses and phone numbers by [email] and [phone]."""
    if "@" in text:
        text = EMAIL_RE.sub("[email]", text)
    if _MAYBE_PHONE_RE.search(text):
        text = PHONE_RE.sub("[phone]", text)
    return text


# --- rejected lines: kept, but never in the clear ------------------------------------
# A malformed line cannot be parsed, so the user id in it cannot be located reliably
# (a numeric id, a Python-literal line, an escaped key, a truncated line, a quoted
# CSV field with a comma...). It is sealed with AES-GCM under a key derived from the
# id key: an operator who holds the id key can read it (`portrait rejects`), a
# database dump cannot.
_SEAL_VERSION = b"\x01"


def _derived(key: bytes, label: bytes) -> bytes:
    return hmac.new(key, b"portrait/" + label, hashlib.sha256).digest()


def seal(text: str, key: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    return _SEAL_VERSION + nonce + AESGCM(_derived(key, b"rejects")).encrypt(nonce, text.encode("utf-8"), None)


def unseal(blob: bytes, key: bytes) -> str:
    """The sealed text; ValueError if it was sealed under another key or altered."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    blob = bytes(blob)
    if blob[:1] != _SEAL_VERSION:
        raise ValueError("not a sealed line (unknown format)")
    try:
        return AESGCM(_derived(key, b"rejects")).decrypt(blob[1:13], blob[13:], None).decode("utf-8")
    except InvalidTag:
        raise ValueError("sealed under another id key, or altered") from None


def key_fingerprint(key: bytes) -> str:
    """Identifies the id key without revealing it (stored with the database)."""
    return "sha256:" + _derived(key, b"fingerprint").hex()[:32]
