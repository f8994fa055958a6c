"""Candidate retrieval for /recommend without a pass over every item.

The candidates are the allowed items with the highest ranking prior,
    w_a * cosine(user, item) + w_p * log1p(item review count)
(registry.rating_model.ranking_prior; the weights come with the rating model).
The prior is an inner product: each item is indexed as
[embedding, log1p(count) / S, sqrt(2 - |both|^2)] (every row of norm sqrt(2), so
IVF's k-means and probing behave as for cosine) and the query is
[w_a * user, w_p * S, 0], so one maximum-inner-product search answers any
weights, and a new champion with new weights needs no new index.
Below EXACT_BELOW items the index is a flat scan (exact); above it an IVF index
(about sqrt(n) lists, float16 vectors) probes NPROBE lists per query, which
bench/recommend.py and tests/integration/test_candidates.py measure against
exact search (recall@100).

The index holds the only copy of the item embeddings (float16 in the IVF index:
770 MB at 10^6 items of 384 dimensions, half the float32 matrix)."""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the models-from-code file registers its model when imported
    from registry.rating_model import RankingWeights

EXACT_BELOW = 20_000  # a flat scan of fewer items costs ~1 ms; the IVF index pays off above
NPROBE = 64  # IVF lists scanned per query (of about sqrt(n)): recall@100 0.97 at 10^6 items (bench/recommend.py)
TRAIN_PER_LIST = 40  # k-means training points per IVF list (faiss asks for at least 39)
ADD_BATCH = 50_000  # items added to the index at once (float32 copies of this many rows at a time)


class CandidateIndex:
    """The items' embeddings and popularity in one faiss inner-product index."""

    def __init__(self, embeddings: np.ndarray, review_count: np.ndarray, nprobe: int = NPROBE) -> None:
        import faiss

        n, dim = embeddings.shape
        self.size, self.dim = n, dim
        self.width = -(-(dim + 2) // 8) * 8  # a multiple of 8: faiss's SIMD distance kernels
        self.has_embedding = np.zeros(n, dtype=bool)
        popularity = np.log1p(np.nan_to_num(np.asarray(review_count, dtype=np.float64), nan=0.0))
        # the popularity coordinate in [0, 1], like the embedding's: k-means sees both
        self.scale = float(popularity.max()) if n and popularity.max() > 0 else 1.0
        self.exact = n < EXACT_BELOW
        self.index: faiss.Index
        if self.exact:
            self.index = faiss.IndexFlatIP(self.width)
        else:
            lists = max(1, int(math.sqrt(n)))
            ivf = faiss.IndexIVFScalarQuantizer(
                faiss.IndexFlatIP(self.width),
                self.width,
                lists,
                faiss.ScalarQuantizer.QT_fp16,
                faiss.METRIC_INNER_PRODUCT,
            )
            sample = np.sort(np.random.default_rng(0).choice(n, size=min(n, lists * TRAIN_PER_LIST), replace=False))
            ivf.train(self._rows(embeddings[sample], popularity[sample]))
            ivf.nprobe = min(nprobe, lists)
            self.index = ivf
        for start in range(0, n, ADD_BATCH):
            chunk = embeddings[start : start + ADD_BATCH]
            self.has_embedding[start : start + len(chunk)] = np.any(chunk != 0, axis=1)
            self.index.add(self._rows(chunk, popularity[start : start + ADD_BATCH]))
        if not self.exact:
            ivf.make_direct_map()  # vectors by item row, for the candidates' affinity
        self._lock = threading.Lock()  # reconstruct is not safe to call concurrently

    def _rows(self, embeddings: np.ndarray, popularity: np.ndarray) -> np.ndarray:
        """[embedding, popularity / S, sqrt(2 - |both|^2), zero padding]: every row has
        norm sqrt(2), so the largest inner products are the nearest rows (k-means and
        IVF probing work as for cosine); the query's last coordinates are 0."""
        out = np.zeros((len(embeddings), self.width), dtype=np.float32)
        out[:, : self.dim] = embeddings
        out[:, self.dim] = popularity / self.scale
        out[:, self.dim + 1] = np.sqrt(np.maximum(2.0 - np.einsum("ij,ij->i", out, out), 0.0))
        return out

    @property
    def nbytes(self) -> int:
        """The index's memory (vectors, list ids, direct map, centroids) and the flags beside it."""
        import faiss

        return int(faiss.serialize_index(self.index).nbytes) + self.has_embedding.nbytes

    def top(self, user: np.ndarray | None, weights: RankingWeights, excluded: np.ndarray, n: int) -> np.ndarray:
        """The n items with the highest prior among those not excluded (rows), best first.
        user: the normalized user embedding (None or zeros when the user has none)."""
        w_a, w_p = float(weights["affinity"]), float(weights["popularity"])
        user_part = np.zeros(self.dim) if user is None else w_a * np.asarray(user, dtype=np.float64).ravel()
        excluded = np.asarray(excluded, dtype=np.int64)
        k = min(n + len(excluded), self.size)
        if k == 0:
            return np.zeros(0, dtype=np.int64)
        if not w_p and not np.any(user_part):  # every prior is 0: the first items in row order
            rows = np.arange(k)
        else:
            query = np.zeros((1, self.width), dtype=np.float32)
            query[0, : self.dim], query[0, self.dim] = user_part, w_p * self.scale
            _, found = self.index.search(query, k)
            rows = found[0][found[0] >= 0]
        return rows[~np.isin(rows, excluded)][:n]

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """The embeddings of the given rows (zero rows for items without one)."""
        if not len(rows):
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            return self.index.reconstruct_batch(np.asarray(rows, dtype=np.int64))[:, : self.dim]

    def affinity(self, user: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Cosine of the (normalized) user vector and each row's item; NaN where either is missing."""
        if not np.any(user):
            return np.full(len(rows), np.nan)
        scores = self.vectors(rows) @ np.asarray(user, dtype=np.float32).ravel()
        return np.where(self.has_embedding[rows], scores, np.nan)
