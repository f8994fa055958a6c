"""`portrait synth`: a SYNTHETIC shop of any size, in the formats Portrait ingests,
resampled from the real shared data so that benchmark loads look like a shop:

- users' activity: each user's weight is a real reviewer's review count (a long tail),
  the reviews are shared out in proportion (multinomial);
- item popularity: each item's weight is a real item's review count;
- ratings: each item copies a real item's rating distribution;
- texts: a real review (summary, text, helpful votes) of the drawn rating;
- times: a user's first review at a real review time, the next ones after real gaps
  between one reviewer's consecutive reviews;
- purchases: (quantity, amount) pairs and each buyer's activity from CDNOW, after real
  gaps between one customer's purchases; views and carts around them, with a funnel
  of VIEWS_PER_PURCHASE views and CARTS_PER_PURCHASE carts per purchase.

Deterministic for a seed. Everything it writes says synthetic: the file names, the
ids (`synth-u...`, `synth-i...`). `check` prints KS statistics of the synthetic
marginals against the real files'. English writes Amazon JSON lines; Chinese (`--lang
zh`) the synthetic Chinese export's format (portrait.ingest.zh_sample) with real
online_shopping_10_cats texts.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from portrait.text.placeholders import SAMPLE_PLACEHOLDER_SHARE, SAMPLE_PLACEHOLDERS

AMAZON = "amazon_musical_instruments_5core/reviews_Musical_Instruments_5.json.gz"
CDNOW = "cdnow_purchases/CDNOW_master.txt"
VIEWS_PER_PURCHASE = 10  # a plausible e-commerce funnel: 10 views and 3 carts per purchase
CARTS_PER_PURCHASE = 3
CHUNK = 200_000  # rows generated and written at a time: memory stays flat at any size


@dataclass
class RealShop:
    """The distributions of the real data a synthetic shop resamples."""

    user_activity: np.ndarray  # reviews per real reviewer
    item_popularity: np.ndarray  # reviews per real item
    item_ratings: list[np.ndarray]  # each real item's ratings
    review_times: np.ndarray  # unix seconds
    review_gaps: np.ndarray  # seconds between one reviewer's consecutive reviews
    texts_by_rating: dict[int, list[tuple[str, str, list[int]]]]  # rating -> (summary, text, helpful)
    buyer_activity: np.ndarray  # purchases per real customer
    purchases: np.ndarray  # (quantity, amount) of each real purchase
    purchase_gaps: np.ndarray  # seconds between one customer's consecutive purchases
    language: str


def load_real(data_dir: Path, language: str = "en") -> RealShop:
    import pandas as pd

    with gzip.open(data_dir / AMAZON, "rt", encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    reviews = pd.DataFrame(
        {
            "user": [r["reviewerID"] for r in records],
            "item": [r["asin"] for r in records],
            "rating": [int(r["overall"]) for r in records],
            "time": [int(r["unixReviewTime"]) for r in records],
        }
    )
    texts: dict[int, list[tuple[str, str, list[int]]]] = {}
    if language == "zh":
        from portrait.ingest.zh_sample import source_rows

        for row in source_rows(data_dir):
            texts.setdefault(5 if row["label"] == "1" else 1, []).append(("", row["review"].strip(), [0, 0]))
        # the Chinese data is positive/negative: its ratings are 1 or 5 as well
        reviews["rating"] = np.where(reviews["rating"] >= 4, 5, 1)
    else:
        for r in records:
            texts.setdefault(int(r["overall"]), []).append(
                (r.get("summary") or "", r.get("reviewText") or "", list(r.get("helpful") or [0, 0]))
            )
    ordered = reviews.sort_values(["user", "time"])
    gaps = ordered.groupby("user")["time"].diff().dropna().to_numpy()

    cdnow = pd.read_csv(
        data_dir / CDNOW, sep=r"\s+", header=None, skiprows=1, names=["user", "date", "qty", "amount"], dtype=str
    )
    cdnow["time"] = pd.to_datetime(cdnow["date"], format="%Y%m%d").astype("int64") // 10**9
    cdnow = cdnow.astype({"qty": int, "amount": float}).sort_values(["user", "time"])
    purchase_gaps = cdnow.groupby("user")["time"].diff().dropna().to_numpy()
    return RealShop(
        user_activity=reviews.groupby("user").size().to_numpy(),
        item_popularity=reviews.groupby("item").size().to_numpy(),
        item_ratings=[g.to_numpy() for _, g in reviews.groupby("item")["rating"]],
        review_times=reviews["time"].to_numpy(),
        review_gaps=gaps,
        texts_by_rating=texts,
        buyer_activity=cdnow.groupby("user").size().to_numpy(),
        purchases=cdnow[["qty", "amount"]].to_numpy(),
        purchase_gaps=purchase_gaps,
        language=language,
    )


@dataclass
class Synthetic:
    reviews_path: Path
    events_path: Path
    reviews: int  # written (pairs a user already reviewed are drawn again, never duplicated)
    events: int
    stats: dict[str, np.ndarray]  # marginals for check(): per-user reviews, ratings, gaps, ...


def user_id(i: np.ndarray) -> np.ndarray:
    return np.char.add("synth-u", np.char.zfill(i.astype(str), 7))


def item_id(i: np.ndarray) -> np.ndarray:
    return np.char.add("synth-i", np.char.zfill(i.astype(str), 6))


def _shares(rng: np.random.Generator, weights_from: np.ndarray, n: int) -> np.ndarray:
    """n weights resampled from a real distribution, normalized."""
    w = rng.choice(weights_from, size=n).astype(float)
    return w / w.sum()


def _counts(rng: np.random.Generator, real_counts: np.ndarray, n: int, total: int) -> np.ndarray:
    """n counts shaped like real ones (each a resampled real count, scaled to the total and
    rounded at random): the long tail itself, not a multinomial's noise around it."""
    x = rng.choice(real_counts, size=n).astype(float)
    x *= total / x.sum()
    counts = np.floor(x).astype(np.int64)
    counts += rng.random(n) < (x - counts)
    diff = int(total - counts.sum())  # a few from rounding: taken from / given to the most active
    if diff:
        top = np.argsort(-counts, kind="stable")[: abs(diff)]
        counts[top] += np.sign(diff)
    return np.maximum(counts, 0)


def _times(rng: np.random.Generator, owners: np.ndarray, starts: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    """Times of rows sorted by owner: the owner's start, then cumulative real gaps."""
    if not len(owners):
        return np.zeros(0, dtype=np.int64)
    step = rng.choice(gaps, size=len(owners)).astype(np.int64)
    first = np.r_[True, owners[1:] != owners[:-1]]
    step[first] = 0
    groups = np.cumsum(first) - 1
    cum = np.cumsum(step)
    base = cum[first][groups]
    return starts[owners] + (cum - base)


def _review_rows(rng, real: RealShop, users: int, items: int, reviews: int, item_share, templates, review_start, now):
    """(owner, item, time, rating) of each synthetic review: per-user counts from the
    real shop's activity, items without repeating a (user, item) pair."""
    per_user = _counts(rng, real.user_activity, users, reviews)
    owners = np.repeat(np.arange(users), per_user)
    item_of = rng.permutation(np.repeat(np.arange(items), _counts(rng, real.item_popularity, items, len(owners))))
    for _ in range(5):  # redraw the few repeated pairs
        pairs = owners.astype(np.int64) * items + item_of
        _, first = np.unique(pairs, return_index=True)
        repeated = np.setdiff1d(np.arange(len(pairs)), first)
        if not len(repeated):
            break
        item_of[repeated] = rng.choice(items, size=len(repeated), p=item_share)
    pairs = owners.astype(np.int64) * items + item_of
    _, keep = np.unique(pairs, return_index=True)
    keep.sort()
    owners, item_of = owners[keep], item_of[keep]
    times = _times(rng, owners, review_start, real.review_gaps)
    if now is not None:
        times = np.minimum(times, now)
    lengths = np.array([len(r) for r in real.item_ratings])
    offsets = np.r_[0, np.cumsum(lengths)[:-1]]
    template = templates[item_of]
    ratings = np.concatenate(real.item_ratings)[
        offsets[template] + (rng.random(len(template)) * lengths[template]).astype(int)
    ]

    return owners, item_of, times, ratings


def _write_events(
    rng,
    real: RealShop,
    events_path: Path,
    users: int,
    items: int,
    events: int,
    item_share,
    buy_start,
    now,
    recent_days,
    progress,
):
    """Purchases by CDNOW-like buyers and the views and carts of the funnel around
    them, written to events_path; returns (events written, the purchases' quantity and amount)."""
    from tqdm import tqdm

    purchases = events // (1 + VIEWS_PER_PURCHASE + CARTS_PER_PURCHASE)
    buyers = np.repeat(np.arange(users), _counts(rng, real.buyer_activity, users, purchases))
    buy_times = _times(rng, buyers, buy_start, real.purchase_gaps)
    if now is not None:
        buy_times = np.minimum(buy_times, now)
    qty_amount = real.purchases[rng.integers(len(real.purchases), size=len(buyers))]
    browse = events - len(buyers)
    browsers = rng.choice(buyers if len(buyers) else np.arange(users), size=browse)
    kinds = np.where(
        rng.random(browse) < CARTS_PER_PURCHASE / (VIEWS_PER_PURCHASE + CARTS_PER_PURCHASE), "cart", "view"
    )
    spread = int(recent_days * 86400 / 2) if recent_days else 2 * 365 * 86400
    browse_times = buy_start[browsers] + rng.integers(0, spread, size=browse)
    if now is not None:
        browse_times = np.minimum(browse_times, now)
    quantities, amounts = qty_amount[:, 0].astype(int).tolist(), np.round(qty_amount[:, 1], 2).tolist()
    purchase_rows = (buyers, np.full(len(buyers), "purchase"), buy_times, quantities, amounts)
    browse_rows = (browsers, kinds, browse_times, [""] * browse, [""] * browse)
    with (
        tqdm(total=len(buyers) + browse, desc="synth events", unit="event", disable=not progress) as bar,
        gzip.open(events_path, "wt", encoding="utf-8", newline="") as f,
    ):
        writer = csv.writer(f)
        writer.writerow(("user_id", "item_id", "event_type", "event_timestamp", "quantity", "amount"))
        for who, kinds_of, when, quantity, amount in (purchase_rows, browse_rows):
            for start in range(0, len(who), CHUNK):
                s = slice(start, start + CHUNK)
                n = len(who[s])
                item_ids = item_id(rng.choice(items, size=n, p=item_share))
                writer.writerows(zip(user_id(who[s]), item_ids, kinds_of[s], when[s].tolist(), quantity[s], amount[s]))
                bar.update(n)

    return len(buyers) + browse, qty_amount


def _stats(owners, item_of, times, ratings, qty_amount, users: int, items: int) -> dict:
    """The distributions a synthetic shop is checked on against the real one."""
    per_user_reviews = np.bincount(owners, minlength=users)
    order = np.lexsort((times, owners))
    same = owners[order][1:] == owners[order][:-1]
    return {
        "reviews_per_user": per_user_reviews[per_user_reviews > 0],
        "reviews_per_item": np.bincount(item_of, minlength=items)[np.bincount(item_of, minlength=items) > 0],
        "rating": ratings,
        "review_gap_s": np.diff(times[order])[same],
        "purchase_amount": qty_amount[:, 1] if len(qty_amount) else np.zeros(0),
    }


def generate(
    real: RealShop,
    out_dir: Path,
    *,
    users: int,
    items: int,
    reviews: int,
    events: int,
    seed: int = 0,
    recent_days: float | None = None,
    progress=True,
) -> Synthetic:
    """Write synthetic_reviews_*.{json.gz|csv} and synthetic_events_*.csv.gz under out_dir.
    recent_days: activity of the last N days up to now (new rows for an existing shop)
    instead of the real data's years."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = f"u{users}_i{items}_r{reviews}_e{events}_s{seed}" + (f"_recent{recent_days:g}d" if recent_days else "")
    item_share = _shares(rng, real.item_popularity, items)
    templates = rng.integers(0, len(real.item_ratings), size=items)  # each item's rating distribution
    if recent_days:  # starts in the window, gaps a tenth of the real ones, nothing after now
        import time as _time

        now = int(_time.time()) - 60
        window = int(recent_days * 86400)
        real = _recent(real, window)
        review_times = rng.integers(now - window, now - window // 2, size=max(users, 1))
    else:
        now, review_times = None, real.review_times
    review_start = rng.choice(review_times, size=users)
    buy_start = rng.choice(review_times, size=users)

    owners, item_of, times, ratings = _review_rows(
        rng, real, users, items, reviews, item_share, templates, review_start, now
    )
    zh = real.language == "zh"
    reviews_path = out_dir / (f"synthetic_reviews_{tag}." + ("csv" if zh else "json.gz"))
    with tqdm(total=len(owners), desc="synth reviews", unit="review", disable=not progress) as bar:
        _write_reviews(reviews_path, rng, real, owners, item_of, ratings, times, zh, bar)

    events_path = out_dir / f"synthetic_events_{tag}.csv.gz"
    written_events, qty_amount = _write_events(
        rng, real, events_path, users, items, events, item_share, buy_start, now, recent_days, progress
    )
    stats = _stats(owners, item_of, times, ratings, qty_amount, users, items)
    return Synthetic(reviews_path, events_path, len(owners), written_events, stats)


def _recent(real: RealShop, window: int) -> RealShop:
    """The real shop with gaps scaled into a window of `window` seconds."""
    from dataclasses import replace

    scale = window / max(1.0, float(np.percentile(real.review_gaps, 99)) * 4)
    return replace(
        real,
        review_gaps=(real.review_gaps * scale).astype(np.int64),
        purchase_gaps=(real.purchase_gaps * scale).astype(np.int64),
    )


def _write_reviews(path, rng, real, owners, item_of, ratings, times, zh, bar) -> None:
    from portrait.ingest.zh_sample import COLUMNS

    by_rating = real.texts_by_rating

    # GB18030 for Chinese, as the Chinese shop's export is written (portrait.ingest.zh_sample)
    with open(path, "w", encoding="gb18030", newline="") if zh else gzip.open(path, "wt", encoding="utf-8") as f:
        writer = csv.writer(f)
        if zh:
            writer.writerow(COLUMNS)
        for start in range(0, len(owners), CHUNK):
            s = slice(start, start + CHUNK)
            users, items_, stars, when = user_id(owners[s]), item_id(item_of[s]), ratings[s], times[s]
            picks = [by_rating[int(r)][rng.integers(len(by_rating[int(r)]))] for r in stars]
            # a share of the shoppers gave stars only: the platform's placeholder stands for the text
            fill = SAMPLE_PLACEHOLDERS["zh" if zh else "en"]
            for n in np.flatnonzero(rng.random(len(picks)) < SAMPLE_PLACEHOLDER_SHARE):
                summary, text = fill[rng.integers(len(fill))]
                picks[n] = (summary, text, [0, 0])
            if zh:
                stamp = (np.asarray(when, dtype="datetime64[s]") + np.timedelta64(8, "h")).astype(str)
                writer.writerows(
                    (u, i, "synthetic", 1 if r == 5 else 0, t.replace("T", " ")[:16].replace("-", "/"), text)
                    for u, i, r, t, (_, text, _) in zip(users, items_, stars, stamp, picks)
                )
            else:
                buf = io.StringIO()
                for u, i, r, t, (summary, text, helpful) in zip(users, items_, stars, when, picks):
                    buf.write(
                        json.dumps(
                            {
                                "reviewerID": u,
                                "asin": i,
                                "helpful": helpful,
                                "reviewText": text,
                                "overall": float(r),
                                "summary": summary,
                                "unixReviewTime": int(t),
                            }
                        )
                        + "\n"
                    )
                f.write(buf.getvalue())
            bar.update(len(users))


def check(real: RealShop, synthetic: Synthetic) -> dict[str, float]:
    """Two-sample KS statistic of each synthetic marginal against the real one (0 = the same
    distribution). Per-user and per-item counts are compared with the real counts scaled to the
    synthetic mean, so a shop with more reviews per user than the real one still matches in shape."""
    from scipy.stats import ks_2samp

    real_stats = {
        "reviews_per_user": real.user_activity,
        "reviews_per_item": real.item_popularity,
        "rating": np.concatenate(real.item_ratings),
        "review_gap_s": real.review_gaps,
        "purchase_amount": real.purchases[:, 1],
    }
    out = {}
    for name, values in synthetic.stats.items():
        reference = real_stats[name]
        if not len(values):
            continue
        if name.startswith("reviews_per"):  # the real counts scaled to the synthetic mean, kept integer
            reference = np.round(reference * values.mean() / reference.mean())
        out[name] = float(ks_2samp(values, reference).statistic)
    return out


def catalog_embeddings(
    review_vectors: np.ndarray, review_items: np.ndarray, n: int, seed: int = 0, own_share: float = 0.7
) -> tuple[np.ndarray, np.ndarray]:
    """A SYNTHETIC catalog of n item embeddings and review counts resampled from real
    reviews' embeddings (review_items: each review's real item): each item takes a
    real item's review count and is the mean of that many reviews (at most 30), drawn
    from one real item's reviews with probability own_share and from all reviews
    otherwise, so items cluster around real products as near-duplicates do in a big
    catalog, without being copies. Returns (embeddings (n, d) normalized, counts)."""
    rng = np.random.default_rng(seed)
    items, owner = np.unique(review_items, return_inverse=True)
    by_item = np.argsort(owner, kind="stable")
    starts = np.searchsorted(owner[by_item], np.arange(len(items) + 1))
    sizes = np.diff(starts)
    base = rng.integers(0, len(items), n)
    counts = rng.choice(sizes, n)  # review counts as the real items' (the long tail)
    draws = np.minimum(counts, 30)
    out = np.zeros((n, review_vectors.shape[1]), dtype=np.float32)
    for start in range(0, n, 5000):
        b, m = base[start : start + 5000], draws[start : start + 5000]
        width = int(m.max())
        own = by_item[starts[b][:, None] + (rng.random((len(b), width)) * sizes[b][:, None]).astype(np.int64)]
        anyone = rng.integers(0, len(review_vectors), (len(b), width))
        picks = np.where(rng.random((len(b), width)) < own_share, own, anyone)
        mask = (np.arange(width)[None, :] < m[:, None]).astype(np.float32)
        vectors = np.einsum("ij,ijk->ik", mask, review_vectors[picks])
        out[start : start + len(b)] = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return out, counts.astype(float)
