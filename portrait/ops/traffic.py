"""Replayed storefront traffic, so that model health has something to measure on a
demo shop: pairs of consecutive reviews of real shoppers (A then B) are replayed by
new shoppers over the HTTP API: review A, ask /rating for B and /recommend, then
review B — B's stars are the late label of the rating, and of the recommendation
when B was in it.

The replayed reviews come from the shop's own data, which the served models were fit
on: the online figures this gives show the mechanism end to end, not a fair
estimate of online quality (real traffic gives that)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import sqlalchemy as sa

PAIRS_SQL = """
WITH ordered AS (
    SELECT user_id, item_id, rating, summary, text, event_timestamp,
           lead(item_id) OVER w AS next_item, lead(rating) OVER w AS next_rating,
           lead(summary) OVER w AS next_summary, lead(text) OVER w AS next_text
    FROM reviews WHERE placeholder IS NULL
    WINDOW w AS (PARTITION BY user_id ORDER BY event_timestamp, review_id)
)
SELECT item_id, rating, summary, text, next_item, next_rating, next_summary, next_text
FROM ordered WHERE next_item IS NOT NULL AND next_item <> item_id
ORDER BY event_timestamp DESC LIMIT :n
"""


@dataclass(frozen=True)
class Pair:
    first: dict
    second: dict


def replay_pairs(engine: sa.Engine, n: int) -> list[Pair]:
    """The newest n consecutive review pairs of the shop's reviewers."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(PAIRS_SQL), {"n": n}).all()
    return [
        Pair(
            {"item_id": r[0], "rating": int(r[1]), "summary": (r[2] or "")[:500], "text": (r[3] or " ")[:5000]},
            {"item_id": r[4], "rating": int(r[5]), "summary": (r[6] or "")[:500], "text": (r[7] or " ")[:5000]},
        )
        for r in rows
    ]


def send(url: str, key: str, pairs: list[Pair], prefix: str = "replayed-shopper") -> Counter:
    """Replay each pair as a new shopper; returns the status codes by route."""
    import httpx
    from tqdm import tqdm

    codes: Counter = Counter()
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60) as http:
        for i, pair in enumerate(tqdm(pairs, desc="replayed shoppers", unit="shopper")):
            shopper = f"{prefix}-{i}"
            calls = [
                ("/reviews", {"user_id": shopper, **pair.first}),
                ("/rating", {"user_id": shopper, "item_ids": [pair.second["item_id"]]}),
                ("/recommend", {"user_id": shopper, "k": 10}),
                ("/reviews", {"user_id": shopper, **pair.second}),
            ]
            for route, body in calls:
                try:
                    codes[f"{route} {http.post(route, json=body).status_code}"] += 1
                except httpx.HTTPError as err:
                    codes[f"{route} {type(err).__name__}"] += 1
    return codes
