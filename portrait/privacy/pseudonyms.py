"""Pseudonymization of user ids, sealing of rejected lines, the id key's
fingerprint and masking of contact details in review text."""

from __future__ import annotations

import hashlib
import hmac
import os
import re

USER_PREFIX = "u_"

# An e-mail address: local part, @, a dotted domain. Matched by anchoring on each "@"
# (mask_emails), not by a regex search: a search tries every start position and
# rescans the local part's run from each, quadratic in a long run of letters before
# an "@" (49,000 "a" + "@" took 2.8 s a line).
EMAIL_LOCAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")
EMAIL_DOMAIN_RE = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def mask_emails(text: str) -> str:
    """Every e-mail address replaced by [email], in time linear in the text: the
    local part is scanned back from each "@" only as far as the previous match or
    "@" (neither is a local-part character), the domain forward to the next "@"."""
    out, done = [], 0
    at = text.find("@")
    while at != -1:
        start = at
        while start > done and text[start - 1] in EMAIL_LOCAL:
            start -= 1
        domain = EMAIL_DOMAIN_RE.match(text, at + 1) if start < at else None
        if domain is None:
            at = text.find("@", at + 1)
            continue
        out += [text[done:start], "[email]"]
        done = domain.end()
        at = text.find("@", done)
    out.append(text[done:])
    return "".join(out)


# A phone number: "+" and a country code followed by digit groups ("+44 20 7946 0958"),
# or the North American shape ("555-123-4567", "(555) 123-4567", "1-800-555-1234").
# Digit runs with other shapes are left alone: in reviews they are part numbers
# ("099-0818-300"), prices and dates far more often than phones.
PHONE_RE = re.compile(
    r"(?<![\w.+])(?:\+\d{1,3}(?:[\s.-]?\(?\d{2,4}\)?){2,4}"
    r"|(?:1[\s.-])?(?:\(\d{3}\)\s?|\d{3}[.-])\d{3}[.-]\d{4})(?![\w])"
)


# Chinese contacts. A mainland mobile number: 1[3-9] and 9 more digits, optionally
# after +86 / 86, in groups 3-4-4 with spaces or hyphens; never inside a longer digit
# run or glued to letters (order numbers, model numbers, prices and dates survive).
CN_MOBILE_RE = re.compile(r"(?<![0-9A-Za-z+])(?:(?:\+|00)?86[\s-]?)?1[3-9]\d(?:[\s-]?\d{4}){2}(?![0-9A-Za-z])")
# An 18-character resident ID: region, birth date (18xx-20xx), sequence, check digit
# (ISO 7064 MOD 11-2, verified below, so that other 18-digit numbers survive).
CN_ID_RE = re.compile(
    r"(?<!\d)[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![\dXx])"
)
# A QQ number, only where the text introduces it as one ("QQ: 12345678", "加我扣扣 12345").
CN_QQ_RE = re.compile(r"((?:QQ|qq|Qq|扣扣|企鹅)\s*(?:号码|号|號)?\s*[:：]?\s*)[1-9]\d{4,10}(?!\d)")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def _valid_cn_id(number: str) -> bool:
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS))
    return "10X98765432"[total % 11] == number[17].upper()


# Cheap tests that rule most texts out before the full patterns run (ingest speed).
_MAYBE_PHONE_RE = re.compile(r"\+\d|\d{3}[.-]\d{4}")
_MAYBE_CN_RE = re.compile(r"\d{5}|1[3-9]\d[\s-]\d{4}|QQ|qq|Qq|扣扣|企鹅")


def pseudonymize(raw_id: str, key: bytes) -> str:
    """The keyed HMAC-SHA256 pseudonym of a shop's user id (96 bits, hex)."""
    raw = raw_id.strip()
    if not raw:
        raise ValueError("empty user id")
    return USER_PREFIX + hmac.new(key, raw.encode("utf-8"), hashlib.sha256).hexdigest()[:24]


def mask_contacts(text: str) -> str:
    """Replace e-mail addresses, phone numbers, Chinese resident ID numbers and QQ
    numbers by [email], [phone], [id] and [qq]."""
    if "@" in text:
        text = mask_emails(text)
    if _MAYBE_CN_RE.search(text):
        text = CN_ID_RE.sub(lambda m: "[id]" if _valid_cn_id(m.group()) else m.group(), text)
        text = CN_MOBILE_RE.sub("[phone]", text)
        text = CN_QQ_RE.sub(lambda m: m.group(1) + "[qq]", text)
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
