"""The pseudonymization key, held to the database it made: its fingerprint (never
the key) is stored at first use, and any process whose key does not match refuses,
instead of silently loading every user again under new pseudonyms."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from portrait.privacy.pseudonyms import key_fingerprint
from portrait.settings import Settings, SettingsError, id_key, key_file


class KeyMismatch(SettingsError):
    """The id key is not the one this database's pseudonyms were made with."""


def stored_fingerprint(conn: Any) -> str | None:
    """The fingerprint kept with the database (a psycopg connection)."""
    with conn.cursor() as cur:
        cur.execute("SELECT fingerprint FROM id_key_fingerprint")
        row = cur.fetchone()
    return row[0] if row else None


def check_key(conn: Any, key: bytes) -> None:
    """Record the key's fingerprint at first use; KeyMismatch if another key made
    this database's pseudonyms. `conn` is a psycopg connection."""
    fingerprint = key_fingerprint(key)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO id_key_fingerprint (fingerprint) VALUES (%s) ON CONFLICT (singleton) DO NOTHING",
            (fingerprint,),
        )
    if not conn.autocommit:
        conn.commit()
    stored = stored_fingerprint(conn)
    if stored != fingerprint:
        raise KeyMismatch(
            f"the pseudonymization key (PORTRAIT_ID_KEY or the key file) is not the one this database was "
            f"built with (stored fingerprint {stored}, this key {fingerprint}). Every user would load again "
            "under a new pseudonym. Use the original key; to start over with a new one, reset the database."
        )


def verified_id_key(settings: Settings, engine: sa.Engine) -> bytes:
    """The id key, checked against the database's fingerprint. Local profile: a key
    file missing while the database holds pseudonyms is an error, not a new key."""
    path = key_file(settings)
    raw_conn = engine.raw_connection()
    try:
        conn: Any = raw_conn.driver_connection
        if not settings.id_key and settings.profile == "local" and not path.exists():
            stored = stored_fingerprint(conn)
            conn.rollback()
            if stored is not None:
                raise KeyMismatch(
                    f"the key file {path} is missing, but this database holds pseudonyms made with a key "
                    f"(fingerprint {stored}). Restore the file from a backup (or export PORTRAIT_ID_KEY); "
                    "a new key would orphan every existing user."
                )
        key = id_key(settings)
        check_key(conn, key)
        return key
    finally:
        raw_conn.close()
