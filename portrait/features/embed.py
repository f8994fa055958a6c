"""Review embeddings: each new review text embedded once per encoder revision and upserted (identical texts share one vector)."""

from __future__ import annotations

import logging
from datetime import datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa

from portrait.store.database import REVIEW_ORDER
from portrait.store.sql import frame, pg_array, utc_times
from portrait.text.encoder import Encoder, encoder_name, review_text

log = logging.getLogger(__name__)


def _store_embeddings(
    conn, todo: pd.DataFrame, hashes: list[bytes], vectors_by_hash: dict, name: str, rev: str
) -> None:
    """The reviews' embeddings COPYed into a staging table and upserted in one statement."""
    cursor = conn.connection.driver_connection.cursor()
    cursor.execute("CREATE TEMP TABLE stage_embeddings (LIKE review_embeddings INCLUDING DEFAULTS) ON COMMIT DROP")
    with cursor.copy(
        "COPY stage_embeddings (review_id, user_id, item_id, event_timestamp, embedding, "
        "encoder, encoder_revision, text_hash) FROM STDIN"
    ) as copy:
        for row, h in zip(todo.itertuples(index=False), hashes):
            copy.write_row(
                (
                    row.review_id,
                    row.user_id,
                    row.item_id,
                    row.event_timestamp.to_pydatetime(),
                    pg_array(vectors_by_hash[h]),
                    name,
                    rev,
                    h,
                )
            )
    cursor.execute("""
        INSERT INTO review_embeddings (review_id, user_id, item_id, event_timestamp, embedding, encoder,
                                       encoder_revision, text_hash)
        SELECT review_id, user_id, item_id, event_timestamp, embedding, encoder, encoder_revision, text_hash
        FROM stage_embeddings
        ON CONFLICT (review_id) DO UPDATE SET embedding = EXCLUDED.embedding, encoder = EXCLUDED.encoder,
            encoder_revision = EXCLUDED.encoder_revision, text_hash = EXCLUDED.text_hash, created_timestamp = now()""")


def embed_new_reviews(conn, model_path: str, revision: str, as_of: datetime, progress: bool) -> int:
    """Embed the reviews up to as_of that have no embedding by this encoder revision."""

    todo = utc_times(
        frame(
            conn,
            """
        SELECT r.review_id, r.user_id, r.item_id, r.event_timestamp, r.summary, r.text
        FROM reviews r LEFT JOIN review_embeddings e ON e.review_id = r.review_id AND e.encoder_revision = :rev
        WHERE e.review_id IS NULL AND r.placeholder IS NULL AND r.event_timestamp <= :as_of ORDER BY """
            + REVIEW_ORDER,
            rev=revision,
            as_of=as_of,
        )
    )
    if todo.empty:
        return 0  # the encoder is not even loaded
    texts = [review_text(s, t) for s, t in zip(todo["summary"], todo["text"])]
    hashes = [text_hash(t) for t in texts]
    # identical texts embed once per encoder revision: reuse what is stored, embed each new text once
    vectors_by_hash: dict[bytes, np.ndarray] = {}
    unique = list(dict.fromkeys(hashes))
    for start in range(0, len(unique), 50_000):
        rows = conn.execute(
            sa.text(
                "SELECT DISTINCT ON (text_hash) text_hash, embedding FROM review_embeddings "
                "WHERE encoder_revision = :rev AND text_hash = ANY(:h)"
            ),
            {"rev": revision, "h": unique[start : start + 50_000]},
        )
        vectors_by_hash.update((bytes(h), np.asarray(v, dtype=np.float32)) for h, v in rows)
    reused = len(vectors_by_hash)
    new = {h: t for h, t in zip(hashes, texts) if h not in vectors_by_hash}
    encoder = Encoder.load(model_path) if new else None
    if encoder is not None:
        vectors_by_hash.update(zip(new, encoder.embed(list(new.values()), progress=progress)))
    name, rev = (encoder.name, encoder.revision) if encoder else (encoder_name(model_path), revision)
    log.info("embedded %d texts for %d reviews (%d known texts reused)", len(new), len(todo), reused)
    _store_embeddings(conn, todo, hashes, vectors_by_hash, name, rev)
    return len(todo)


def text_hash(text: str) -> bytes:
    """The content hash of an embedded text (sha256, first 16 bytes)."""
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).digest()[:16]
