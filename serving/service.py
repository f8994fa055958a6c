"""Portrait's HTTP API: BentoML services over the champion models and Feast.

`SentimentModel` serves models:/review-sentiment@champion with adaptive
batching; `Portrait` is the public API (sentiment, rating, recommend, profile,
reviews), reads the user's features from Feast per request (items from an
in-process snapshot, see portrait/online.py) and scores with
models:/rating-predictor@champion. Both pick up a new champion without a
restart: they poll the alias, and POST /admin/reload forces it.

    bentoml serve serving.service:Portrait      (or: portrait serve)
"""
from __future__ import annotations

import gc
import logging
import threading
import time
from contextvars import ContextVar
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Annotated

import bentoml
import numpy as np
from bentoml.exceptions import BentoMLException, InvalidArgument, NotFound, ServiceUnavailable
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import Field

from registry.models import RATING, SENTIMENT
from serving.schemas import (
    MAX_ITEMS, MAX_TEXTS, ItemId, ModelVersions, Profile, RatedItem, RatingResponse, Recommendation,
    RecommendResponse, ReloadResponse, ReviewResponse, ReviewText, Sentiment, SentimentResponse, UserId,
)

log = logging.getLogger("portrait.serving")
# Per-request notes shared between the middleware and the endpoint's worker thread
# (the thread runs in a copy of the context, which holds the same dict).
_notes: ContextVar[dict] = ContextVar("portrait_request_notes")
POLL_SECONDS = 30.0
CANDIDATES = 100


class Conflict(BentoMLException):
    """The request repeats something already stored (a second review of an item)."""
    error_code = HTTPStatus.CONFLICT


def unavailable(err: BaseException) -> bool:
    """Whether an error means a dependency (database, online store) is down."""
    import psycopg
    import redis
    import sqlalchemy

    return isinstance(err, (psycopg.OperationalError, psycopg.InterfaceError, redis.exceptions.ConnectionError,
                            redis.exceptions.TimeoutError, sqlalchemy.exc.OperationalError,
                            sqlalchemy.exc.InterfaceError, ConnectionError, TimeoutError))


def down(reason: str) -> ServiceUnavailable:
    """A 503 whose reason reaches the client (BentoML hides 5xx messages; the
    middleware puts this one back)."""
    notes = _notes.get(None)
    if notes is not None:
        notes["reason"] = reason
    return ServiceUnavailable(reason)


class ChampionModel:
    """models:/NAME@champion, reloaded when the alias moves to another version."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.model = None
        self.version: str | None = None
        self.error: str | None = None
        self._lock = threading.Lock()

    def refresh(self, force: bool = False) -> bool:
        """Load the champion if the alias moved (or force); True if the version changed.
        A failure keeps the model being served and records why."""
        from mlflow import MlflowClient

        from registry.models import load

        with self._lock:
            try:
                version = str(MlflowClient().get_model_version_by_alias(self.name, "champion").version)
                if version == self.version and self.model is not None and not force:
                    return False
                model, info = load(self.name)
            except Exception as err:  # noqa: BLE001 - any failure to reach MLflow or load: keep serving
                self.error = f"{type(err).__name__}: {err}"[:300]
                log.warning("cannot load %s@champion: %s", self.name, self.error)
                return False
            changed = str(info.version) != self.version
            self.model, self.version, self.error = model, str(info.version), None
            return changed

    def ranking(self) -> dict:
        """The /recommend ranking weights the rating champion was trained with."""
        from registry.rating_model import DEFAULT_RANKING

        return getattr(self.get().unwrap_python_model(), "ranking", DEFAULT_RANKING)

    def get(self):
        if self.model is None:
            raise down(f"model {self.name}@champion is not available: {self.error or 'not loaded'}; "
                       "train and promote one (portrait models promote)")
        return self.model


def _poll(refresh, stop: threading.Event) -> None:
    while not stop.wait(POLL_SECONDS):
        refresh()


def _settle() -> None:
    """After start-up: move everything loaded so far (torch, transformers, Feast,
    MLflow: millions of objects) out of the garbage collector's reach. Otherwise
    every full collection walks them all, ~0.3 s with the GIL held, and stalls
    the requests in flight (measured: /recommend p99 from ~30 to ~170 ms)."""
    gc.collect()
    gc.freeze()


def _configure_tracking() -> None:
    from portrait import tracking
    from portrait.settings import get_settings

    tracking.configure(get_settings())


@bentoml.service(name="portrait-sentiment", traffic={"timeout": 60})
class SentimentModel:
    """The sentiment champion behind adaptive batching: concurrent requests'
    texts are classified in one forward pass."""

    def __init__(self) -> None:
        _configure_tracking()
        self.champion = ChampionModel(SENTIMENT)
        self.champion.refresh()
        self._stop = threading.Event()
        threading.Thread(target=_poll, args=(self.champion.refresh, self._stop), daemon=True).start()
        _settle()

    def _classify(self, texts: list[str]) -> list[dict]:
        import pandas as pd

        model, version = self.champion.get(), self.champion.version
        out = model.predict(pd.DataFrame({"text": texts}))
        probs = out[["prob_negative", "prob_neutral", "prob_positive"]].to_numpy()
        return [{"label": label, "probabilities": {"negative": float(p[0]), "neutral": float(p[1]),
                                                  "positive": float(p[2])}, "version": version}
                for label, p in zip(out["label"], probs)]

    # max_latency_ms is the latency objective, not a wait: below a CPU forward pass the
    # dispatcher refuses requests as "overloaded".
    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=5000)
    def predict(self, texts: list[str]) -> list[dict]:
        return self._classify(texts)

    @bentoml.api
    def predict_unbatched(self, texts: list[str]) -> list[dict]:
        """The same model, one forward pass per request (the benchmark's baseline)."""
        return self._classify(texts)

    @bentoml.api
    def reload(self) -> dict:
        changed = self.champion.refresh(force=True)
        return {"version": str(self.champion.version), "changed": changed, "error": self.champion.error}

    def __is_ready__(self) -> bool:
        # ready without a champion: /sentiment then answers 503 with the reason
        return True


profile_app = FastAPI(title="Portrait profile", description="GET /profile/{user_id}: the user's portrait")


@profile_app.get("/{user_id}", response_model=Profile)
def get_profile(user_id: str):
    service = bentoml.get_current_service()
    try:
        return service.profile_of(user_id)
    except (NotFound, ServiceUnavailable, InvalidArgument) as err:
        return JSONResponse({"error": str(err)}, status_code=err.error_code.value)


@bentoml.service(name="portrait", traffic={"timeout": 30})
@bentoml.asgi_app(profile_app, path="/profile")
class Portrait:
    sentiment_model = bentoml.depends(SentimentModel)

    def __init__(self) -> None:
        from portrait import database
        from portrait.settings import get_settings, id_key

        self.settings = get_settings()
        self.key = id_key(self.settings)
        _configure_tracking()
        self.rating = ChampionModel(RATING)
        self.rating.refresh()
        self.engine = database.engine(self.settings, pool_size=4)
        self._store_lock = threading.Lock()
        self._reader = None
        self._store_error: str | None = None
        self._encoder = None
        self._api_run_id: int | None = None
        self._sentiment_version: str | None = None
        self._refresh_models()
        self._connect_store()
        self._stop = threading.Event()
        threading.Thread(target=_poll, args=(self._refresh_models, self._stop), daemon=True).start()
        _settle()

    # --- dependencies ---------------------------------------------------------------

    def _connect_store(self):
        """A fresh FeatureStore and reader (after a failure the old connections are dropped)."""
        from portrait.featurestore import feature_store
        from portrait.online import OnlineReader

        with self._store_lock:
            try:
                old = self._reader
                # items are re-checked by the poller (_refresh_models), never on a request
                reader = OnlineReader(feature_store(self.settings), refresh_seconds=float("inf"))
                if old is not None and old._items is not None:
                    reader._items, reader._checked = old._items, old._checked  # items survive a reconnect
                self._reader, self._store_error = reader, None
            except Exception as err:  # noqa: BLE001
                self._reader, self._store_error = None, f"{type(err).__name__}: {err}"[:300]
        return self._reader

    def _online(self, action):
        """Run action(reader); a dead store gives 503 with the reason and a reconnect next time."""
        reader = self._reader or self._connect_store()
        if reader is None:
            raise down(f"feature store unavailable: {self._store_error}")
        try:
            return action(reader)
        except (InvalidArgument, NotFound, Conflict, ServiceUnavailable):
            raise
        except Exception as err:
            if unavailable(err) or "connection" in str(err).lower():
                self._reader = None
                self._store_error = f"{type(err).__name__}: {str(err).strip()}"[:300]
                raise down(f"online store unavailable: {self._store_error}") from None
            raise

    def _db(self, action):
        try:
            with self.engine.begin() as conn:
                return action(conn)
        except (InvalidArgument, NotFound, Conflict):
            raise
        except Exception as err:
            if unavailable(err):
                raise down(f"database unavailable: {str(err).strip()[:300]}") from None
            raise

    def versions(self, sentiment_version: str | None = None) -> ModelVersions:
        if sentiment_version:
            self._sentiment_version = sentiment_version
        return ModelVersions(review_sentiment=self._sentiment_version, rating_predictor=self.rating.version)

    def _refresh_models(self) -> None:
        """The poller: reload the rating champion and, if the item views were
        materialized again, the item snapshot; note the sentiment champion's version."""
        from mlflow import MlflowClient

        self.rating.refresh()
        reader = self._reader
        if reader is not None and reader._items is not None:
            try:
                reader.refresh_items()
            except Exception as err:  # noqa: BLE001 - requests keep the snapshot they have
                log.warning("cannot refresh the item snapshot: %s", err)
        try:
            self._sentiment_version = str(MlflowClient().get_model_version_by_alias(SENTIMENT, "champion").version)
        except Exception:  # noqa: BLE001 - the version shown is then the last one seen
            pass

    def _pseudonym(self, user_id: str) -> str:
        from portrait.privacy import pseudonymize

        try:
            return pseudonymize(user_id, self.key)
        except ValueError:
            raise InvalidArgument("user_id is empty") from None

    def _classify(self, texts: list[str]) -> list[dict]:
        try:
            return self.sentiment_model.predict(texts)
        except BentoMLException as err:
            if getattr(err, "error_code", 500) == 503 or "unavailable" in str(err).lower():
                raise down(f"sentiment model unavailable: {err}") from None
            raise

    # --- endpoints ---------------------------------------------------------------------

    @bentoml.api(route="/sentiment")
    def sentiment(self, texts: Annotated[list[ReviewText], Field(min_length=1, max_length=MAX_TEXTS)]
                  ) -> SentimentResponse:
        """Label and class probabilities for each text."""
        results = self._classify(texts)
        return SentimentResponse(results=[Sentiment(label=r["label"], probabilities=r["probabilities"])
                                          for r in results],
                                 models=self.versions(results[0]["version"] if results else None))

    def _known_items(self, reader, item_ids: list[str]) -> None:
        rows = reader.items().rows(item_ids)
        unknown = [i for i, r in zip(item_ids, rows) if r < 0]
        if unknown:
            raise NotFound(f"unknown item(s): {', '.join(unknown[:10])}")

    def _predict_ratings(self, reader, user: dict, item_ids: list[str]) -> np.ndarray:
        model = self.rating.get()
        frame = reader.rating_inputs(user, item_ids, time.time())
        schema = model.metadata.get_input_schema()
        if schema is not None:  # exactly the model's inputs: MLflow warns (per request) about extras
            frame = frame[[c for c in schema.input_names() if c in frame]]
        return model.predict(frame)["rating"].to_numpy()

    @bentoml.api(route="/rating")
    def rating_of(self, user_id: UserId,
                  item_ids: Annotated[list[ItemId], Field(min_length=1, max_length=MAX_ITEMS)]) -> RatingResponse:
        """Predicted rating of each item by this user, from online features."""
        pseudonym = self._pseudonym(user_id)

        def answer(reader):
            self._known_items(reader, item_ids)
            user = reader.user(pseudonym)
            ratings = self._predict_ratings(reader, user, item_ids)
            return RatingResponse(user_id=user_id, cold_start=not user,
                                  ratings=[RatedItem(item_id=i, rating=round(float(r), 3))
                                           for i, r in zip(item_ids, ratings)], models=self.versions())
        return self._online(answer)

    def _seen(self, pseudonym: str) -> set[str]:
        import sqlalchemy as sa

        return set(self._db(lambda conn: conn.execute(sa.text(
            "SELECT item_id FROM reviews WHERE user_id = :u UNION "
            "SELECT item_id FROM events WHERE user_id = :u AND item_id IS NOT NULL"), {"u": pseudonym}).scalars().all()))

    @bentoml.api(route="/recommend")
    def recommend(self, user_id: UserId, k: Annotated[int, Field(ge=1, le=MAX_ITEMS)] = 10,
                  exclude_seen: bool = True) -> RecommendResponse:
        """Top-k items: candidates by similarity to what the user reviewed plus a
        popularity prior, re-ranked with the predicted rating (weights chosen on
        validation at training); a user without a text profile gets the most popular items."""
        from registry.rating_model import ranking_prior, ranking_score, top_candidates

        pseudonym = self._pseudonym(user_id)
        seen = self._seen(pseudonym) if exclude_seen else set()

        def answer(reader):
            items = reader.items()
            user = reader.user(pseudonym)
            allowed = np.array([i not in seen for i in items.item_ids])
            if not user.get("user_embedding"):
                rank = np.where(allowed, items.stats["item_popularity_rank"], np.inf)
                top = [j for j in np.argsort(rank, kind="stable")[:k] if np.isfinite(rank[j])]
                return RecommendResponse(user_id=user_id, cold_start=True, models=self.versions(), items=[
                    Recommendation(item_id=items.item_ids[j], score=float(-rank[j]), predicted_rating=None,
                                   affinity=None, why=f"popular: #{int(rank[j])} by reviews")
                    for j in top])
            weights = self.rating.ranking()
            affinity = reader.affinity(user, items.item_ids)
            prior = ranking_prior(affinity, items.stats["item_review_count"], weights)
            candidates = top_candidates(prior, allowed, CANDIDATES)
            ids = [items.item_ids[j] for j in candidates]
            ratings = self._predict_ratings(reader, user, ids) if ids else np.array([])
            scores = ranking_score(prior[candidates], ratings, weights)
            order = np.argsort(-scores, kind="stable")[:k]
            return RecommendResponse(user_id=user_id, cold_start=False, models=self.versions(), items=[
                Recommendation(item_id=ids[o], score=round(float(scores[o]), 4),
                               predicted_rating=round(float(ratings[o]), 3),
                               affinity=_rounded(affinity[candidates[o]]),
                               why=_why(ratings[o], affinity[candidates[o]],
                                        items.stats["item_review_count"][candidates[o]]))
                for o in order])
        return self._online(answer)

    def profile_of(self, user_id: str) -> Profile:
        from portrait.online import USER_BEHAVIOR, segment

        pseudonym = self._pseudonym(user_id)
        user = self._online(lambda reader: reader.user(pseudonym))
        if not user:
            raise NotFound(f"unknown user {user_id}")
        last = user.get("last_activity_unix")
        return Profile(
            user_id=user_id, segment=segment(user),
            behavior={k: user.get(k) for k in USER_BEHAVIOR if not k.endswith("_unix")},
            sentiment_tendency={k: user.get(f"share_{k}") for k in ("positive", "neutral", "negative")},
            sentiment_source=user.get("sentiment_source"),
            interest_tags=[t for t in (user.get("interest_tags") or "").split(", ") if t],
            last_activity=datetime.fromtimestamp(last, tz=timezone.utc).isoformat() if last else None,
            models=self.versions())

    @bentoml.api(route="/reviews")
    def review(self, user_id: UserId, item_id: ItemId, rating: Annotated[int, Field(ge=1, le=5)],
               text: ReviewText, summary: Annotated[str, Field(max_length=500)] = "") -> ReviewResponse:
        """Store a new review (raw tables), classify its sentiment and update the
        user's online text profile through the Feast push source."""
        import pandas as pd

        from portrait.encoder import review_text
        from portrait.online import pushed_text_profile
        from portrait.privacy import mask_contacts

        pseudonym = self._pseudonym(user_id)
        text, summary = mask_contacts(text.strip()), mask_contacts(summary.strip())
        sentiment = self._classify([review_text(summary, text)])[0]
        now = datetime.now(timezone.utc)
        review_id = self._db(lambda conn: self._store_review(conn, pseudonym, item_id, rating, summary, text, now))

        def push(reader) -> bool:
            user = reader.user(pseudonym)
            vector = self._embed(review_text(summary, text))
            label = sentiment["label"] if (user.get("sentiment_source") or "ratings") != "ratings" else \
                ("negative" if rating <= 2 else "neutral" if rating == 3 else "positive")
            row = pushed_text_profile(user, vector, label, now)
            reader.store.push("user_text_push", pd.DataFrame({"user_id": [pseudonym], **row}))
            return True
        try:
            updated = self._online(push)
        except ServiceUnavailable as err:
            log.warning("review %s stored; online profile not updated: %s", review_id, err)
            updated = False
        return ReviewResponse(user_id=user_id, item_id=item_id, review_id=review_id,
                              sentiment=Sentiment(label=sentiment["label"], probabilities=sentiment["probabilities"]),
                              online_profile_updated=updated, models=self.versions(sentiment["version"]))

    def _store_review(self, conn, user: str, item: str, rating: int, summary: str, text: str, now) -> int:
        import sqlalchemy as sa

        if self._api_run_id is None:
            self._api_run_id = conn.execute(sa.text(
                "INSERT INTO ingest_runs (source, path, status) VALUES ('api', 'POST /reviews', 'running') "
                "RETURNING run_id")).scalar()
        params = {"u": user, "i": item, "r": rating, "s": summary, "t": text, "ts": now, "run": self._api_run_id}
        conn.execute(sa.text("INSERT INTO users VALUES (:u, :ts) ON CONFLICT DO NOTHING"), params)
        conn.execute(sa.text("INSERT INTO items VALUES (:i, :ts) ON CONFLICT DO NOTHING"), params)
        review_id = conn.execute(sa.text(
            "INSERT INTO reviews (user_id, item_id, rating, summary, text, helpful_votes, total_votes, "
            "event_timestamp, run_id) VALUES (:u, :i, :r, :s, :t, 0, 0, :ts, :run) "
            "ON CONFLICT (user_id, item_id) DO NOTHING RETURNING review_id"), params).scalar()
        if review_id is None:
            raise Conflict(f"user {user[:8]}... has already reviewed item {item}")
        conn.execute(sa.text(
            "INSERT INTO events (event_key, user_id, item_id, event_type, event_timestamp, run_id) "
            "VALUES ('review:' || :u || ':' || :i, :u, :i, 'review', :ts, :run) ON CONFLICT DO NOTHING"), params)
        conn.execute(sa.text("UPDATE ingest_runs SET rows_read = rows_read + 1, rows_loaded = rows_loaded + 1 "
                             "WHERE run_id = :run"), params)
        return int(review_id)

    def _embed(self, text: str) -> np.ndarray:
        from portrait.encoder import Encoder

        if self._encoder is None:
            self._encoder = Encoder.load(self.settings.encoder)
        return self._encoder.embed([text])[0]

    @bentoml.api(route="/admin/reload")
    def reload(self) -> ReloadResponse:
        """Load the current champions now (they are also polled every 30 s)."""
        changed = [RATING] if self.rating.refresh(force=True) else []
        sentiment = self.sentiment_model.reload()
        if sentiment.get("changed"):
            changed.append(SENTIMENT)
        return ReloadResponse(models=self.versions(sentiment.get("version")), changed=changed)

    def __is_ready__(self) -> bool:
        # the routes that need a missing champion answer 503 with the reason; the store is needed by all
        return self._reader is not None


def _rounded(value: float) -> float | None:
    return round(float(value), 4) if np.isfinite(value) else None


def _why(rating: float, affinity: float, reviews: float) -> str:
    parts = [f"predicted {rating:.1f} stars"]
    if np.isfinite(affinity):
        parts.append(f"similarity {affinity:.2f} to what you reviewed")
    if np.isfinite(reviews):
        parts.append(f"{int(reviews)} reviews")
    return "; ".join(parts)


class ApiKeyMiddleware:
    """X-API-Key on every route but health checks and the API docs; and error
    bodies that say what went wrong: a 503 carries its reason (BentoML hides 5xx
    messages), a 4xx is one {"error": ...} object."""

    OPEN = ("/livez", "/readyz", "/healthz", "/docs.json", "/docs", "/static_content")

    def __init__(self, app) -> None:
        self.app = app
        self.keys: set[str] | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] == "/" or scope["path"].startswith(self.OPEN):
            return await self.app(scope, receive, send)
        if self.keys is None:
            from portrait.settings import api_keys, get_settings

            self.keys = api_keys(get_settings())
        key = dict(scope.get("headers") or []).get(b"x-api-key", b"").decode("latin-1")
        if key not in self.keys:
            return await _json(send, 401, {"error": "missing or wrong API key: send it in the X-API-Key header"})
        notes: dict = {}
        token = _notes.set(notes)
        try:
            await self.app(scope, receive, _ErrorBodies(send, notes))
        finally:
            _notes.reset(token)


class _ErrorBodies:
    """Wraps `send`: rewrites the body of error responses (see ApiKeyMiddleware)."""

    def __init__(self, send, notes: dict) -> None:
        self.send, self.notes = send, notes
        self.start: dict | None = None
        self.chunks: list[bytes] = []

    async def __call__(self, message) -> None:
        if message["type"] == "http.response.start" and message["status"] >= 400:
            self.start = message  # held until the body is known
            return
        if self.start is None:
            return await self.send(message)
        self.chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        import json

        status, body = self.start["status"], b"".join(self.chunks)
        if status == 503 and self.notes.get("reason"):
            return await _json(self.send, 503, {"error": self.notes["reason"]})
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and len(parsed) == 1 and isinstance(parsed[0], dict):
            return await _json(self.send, status, parsed[0])
        await self.send(self.start)
        await self.send({"type": "http.response.body", "body": body})


async def _json(send, status: int, payload: dict) -> None:
    import json

    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


Portrait.add_asgi_middleware(ApiKeyMiddleware)
