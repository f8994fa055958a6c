"""Portrait's HTTP API: the composition of BentoML services over the champion
models and Feast.

`SentimentModel` serves models:/review-sentiment@champion with adaptive
batching, in its own worker process; `Portrait` is the public API (sentiment,
rating, recommend, profile, reviews): it reads the user's features from Feast
per request (items from an in-process snapshot, serving/online.py) and scores
with models:/rating-predictor@champion. Champions are polled
(serving/champions.py) and POST /admin/reload (admin keys) forces it. Keys,
roles, limits, body checks, access log and metrics are the gate in
serving/middleware.py; failures map to HTTP in serving/errors.py. User ids travel
in JSON bodies only: never in a path, a log line or a metric label.

    bentoml serve serving.service:Portrait      (or: portrait serve)
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated

import bentoml
import numpy as np
from bentoml.exceptions import InvalidArgument, NotFound, ServiceUnavailable
from pydantic import Field

from portrait.ingest.loader import (
    add_review,
    close_api_run,
    item_known,
    open_api_run,
    reconcile_runs,
    user_history,
)
from portrait.ingest.parsing import review_row
from portrait.privacy.idkey import verified_id_key
from portrait.privacy.pseudonyms import mask_contacts, pseudonymize
from portrait.settings import get_settings
from portrait.store import database
from portrait.store.database import advisory_lock
from portrait.text.encoder import Encoder, review_text
from portrait.text.labels import SENTIMENT_LABELS, rating_sentiment
from portrait.text.language import detect_language
from portrait.text.placeholders import TEMPLATE
from registry.models import RATING, SENTIMENT, SENTIMENT_ZH
from serving.champions import ChampionModel, configure_tracking, poll_forever, settle
from serving.errors import Conflict, Gone, describe, down, is_outage, is_stale_connection
from serving.health import Shadow, monitor_forever, observe_freshness
from serving.middleware import Gate
from serving.ranking import GraphRows
from serving.request_log import Entry, RequestLog, feature_summary
from serving.schemas import (
    MAX_ITEMS,
    MAX_TEXTS,
    ItemId,
    ModelVersions,
    Profile,
    RatedItem,
    RatingResponse,
    Recommendation,
    RecommendResponse,
    ReloadResponse,
    ReviewResponse,
    ReviewText,
    Sentiment,
    SentimentResponse,
    UserId,
    parse_aspects,
)

if TYPE_CHECKING:
    from portrait.text.encoder import Encoder
    from serving.online import OnlineReader

log = logging.getLogger("portrait.serving")
READY_CACHE_S = 2.0  # /readyz re-checks the stores at most this often
REBUILD_AFTER = 3  # unexpected feature-route failures in a row before the store client is rebuilt
READINESS_PROBE_USER = "u_readiness_probe"  # not a pseudonym any user can have (those are hex)


@bentoml.service(name="portrait-sentiment", traffic={"timeout": 60})
class SentimentModel:
    """The sentiment champion behind adaptive batching: concurrent requests'
    texts are classified in one forward pass."""

    def __init__(self) -> None:
        import os

        import torch

        # leave a core to the API process: its feature routes must not wait behind a forward pass
        torch.set_num_threads(get_settings().sentiment_threads or max(1, (os.cpu_count() or 2) - 1))
        configure_tracking()
        settings = get_settings()
        engine = database.engine(settings, pool_size=2)
        self.champion = ChampionModel(SENTIMENT, audit=engine)
        self.chinese = ChampionModel(SENTIMENT_ZH, audit=engine)  # optional: where Chinese texts have their own model
        self.challenger = ChampionModel(SENTIMENT, alias="challenger")  # scored in shadow when the alias is set
        request_log = RequestLog(
            engine if settings.request_log else None, settings.request_log_queue, settings.request_log_retention_days
        )
        self.shadow = Shadow(request_log, settings.shadow_share, settings.shadow_timeout_s)
        self.refresh()
        poll_forever(self.refresh)
        settle()

    def refresh(self, force: bool = False) -> bool:
        chinese = self.chinese.refresh(force)
        self.challenger.refresh(force)
        return self.champion.refresh(force) or chinese

    def _shadowed(self, texts: list[str], results: list[dict]) -> list[dict]:
        """The champion's results, and the challenger scored on review-sentiment's texts later."""
        mine = [(t, r["label"]) for t, r in zip(texts, results) if r["name"] == SENTIMENT]
        if mine:

            def score(challenger) -> Entry:
                import pandas as pd

                labels = challenger.predict(pd.DataFrame({"text": [t for t, _ in mine]}))["label"].tolist()
                prediction = {"labels": labels, "champion": [label for _, label in mine]}
                features: dict[str, list[float | None]] = {"text_chars": [float(len(t)) for t, _ in mine[:20]]}
                return Entry("/sentiment", SENTIMENT, None, prediction, 0, features=features)

            self.shadow.submit(self.challenger, score)
        return results

    def _classify(self, texts: list[str]) -> list[dict]:
        """Texts detected as Chinese go to review-sentiment-zh's champion when there is
        one, every other text (and all of them when there is none) to review-sentiment's."""
        if self.chinese.model is None:
            return self._predict(self.champion, texts)

        routes = [self.chinese if detect_language(t) == "zh" else self.champion for t in texts]
        out: list[dict] = [{} for _ in texts]
        for champion in {id(r): r for r in routes}.values():
            idx = [i for i, r in enumerate(routes) if r is champion]
            for i, result in zip(idx, self._predict(champion, [texts[i] for i in idx])):
                out[i] = result
        return out

    @staticmethod
    def _predict(champion: ChampionModel, texts: list[str]) -> list[dict]:
        import pandas as pd

        model, version = champion.get(), champion.version
        out = model.predict(pd.DataFrame({"text": texts}))
        labels = [c.removeprefix("prob_") for c in out.columns if c.startswith("prob_")]
        probs = out[[f"prob_{label}" for label in labels]].to_numpy()
        return [
            {
                "label": label,
                "probabilities": dict(zip(labels, map(float, p))),
                "version": version,
                "name": champion.name,
                "model": f"{champion.name} v{version}",
            }
            for label, p in zip(out["label"], probs)
        ]

    # max_latency_ms is the latency objective, not a wait: below a CPU forward pass the
    # dispatcher refuses requests as "overloaded".
    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=5000)
    def predict(self, texts: list[str]) -> list[dict]:
        return self._shadowed(texts, self._classify(texts))

    @bentoml.api
    def predict_unbatched(self, texts: list[str]) -> list[dict]:
        """The same model, one forward pass per request (the benchmark's baseline)."""
        return self._classify(texts)

    @bentoml.api
    def reload(self) -> dict:
        changed = self.refresh(force=True)
        return {"version": str(self.champion.version), "changed": changed, "error": self.champion.error}

    def __is_ready__(self) -> bool:
        return True  # ready without a champion: /sentiment then answers 503 with the reason


@bentoml.service(
    name="portrait",
    traffic={"timeout": 30},
    threads=16,  # sync endpoints run in this pool; model-bound ones are capped by the gate, so the rest always find a thread
    # BentoML's HTTP metrics label series by raw path (which carried user ids, without
    # bound); the gate serves /metrics with series labelled by route
    metrics={"enabled": False},
    logging={"access": {"enabled": False}},  # the gate writes an access line without ids or bodies
)
class Portrait:
    sentiment_model = bentoml.depends(SentimentModel)

    def __init__(self) -> None:

        self.settings = get_settings()
        configure_tracking()
        self.engine = database.engine(self.settings, pool_size=8)
        self.rating = ChampionModel(RATING, audit=self.engine)
        self.challenger = ChampionModel(RATING, alias="challenger")  # scored in shadow when the alias is set
        self.request_log = RequestLog(
            self.engine if self.settings.request_log else None,
            self.settings.request_log_queue,
            self.settings.request_log_retention_days,
        )
        self.shadow = Shadow(self.request_log, self.settings.shadow_share, self.settings.shadow_timeout_s)
        self._challenger_rows = GraphRows()
        self.key = verified_id_key(self.settings, self.engine)
        self._store_lock = threading.Lock()
        self._reader: OnlineReader | None = None  # built on first use (Feast loads lazily)
        self._store_error: str | None = None
        self._encoder: Encoder | None = None
        self._encoder_lock = threading.Lock()
        self._api_run_id: int | None = None
        self._run_lock = threading.Lock()
        self._sentiment_version: str | None = None
        self._failures = 0  # feature-route failures in a row: a client that keeps failing is rebuilt
        self._failures_lock = threading.Lock()
        self._ready_lock = threading.Lock()
        self._ready, self._ready_at = False, -READY_CACHE_S
        self._graph_rows = GraphRows()  # the rating model's graph items -> snapshot rows, per pair

        reconcile_runs(self.engine)  # runs of processes that are gone (never a live replica's)
        self._refresh()
        poll_forever(self._refresh)
        monitor_forever(self._health, self.settings.monitor_every_s)
        # the encoder /reviews embeds with, loaded now off the request path: loading it
        # at the first review made that review (and those beside it) wait ~15 s
        self._warmed = threading.Event()  # readiness waits for it (set on failure too)
        threading.Thread(target=self._warm_encoder, name="encoder-warm-up", daemon=True).start()
        settle()

    # --- dependencies ---------------------------------------------------------------

    def _connect_store(self):
        """A fresh FeatureStore and reader; the item snapshot survives a reconnect."""
        from portrait.featurestore.repo import feature_store
        from serving.online import OnlineReader

        with self._store_lock:
            old = self._reader
            try:
                items = old.items() if old is not None and old.has_items else None
                store = feature_store(self.settings)
                self._reader = OnlineReader(store, old.contract if old is not None else None, items)
                self._store_error = None
            except Exception as err:  # noqa: BLE001 - any failure: no reader, and the 503s say why
                self._reader, self._store_error = None, describe(err)
        return self._reader

    def _online(self, action):
        """Run action(reader); a dead store gives 503 with the reason and a reconnect
        next time, and so does a reader that failed REBUILD_AFTER times in a row for
        any other reason (a client left broken must not fail every request after)."""
        reader = self._reader or self._connect_store()
        if reader is None:
            raise down(f"feature store unavailable: {self._store_error}")
        try:
            result = action(reader)
        except Exception as err:
            if isinstance(err, ServiceUnavailable) or _is_client_error(err):
                raise
            with self._failures_lock:
                self._failures += 1
                if is_outage(err) or self._failures >= REBUILD_AFTER:
                    log.warning("feature store client rebuilt after: %s", describe(err))
                    self._reader, self._store_error, self._failures = None, describe(err), 0
            if is_outage(err):
                raise down(f"online store unavailable: {describe(err)}") from None
            raise
        self._failures = 0
        return result

    def _db(self, action):
        try:
            return action()
        except Exception as err:
            if is_outage(err) and not isinstance(err, ServiceUnavailable):
                raise down(f"database unavailable: {describe(err)}") from None
            raise

    def versions(self, sentiment_version: str | None = None) -> ModelVersions:
        if sentiment_version:
            self._sentiment_version = sentiment_version
        return ModelVersions(review_sentiment=self._sentiment_version, rating_predictor=self.rating.version)

    def _refresh(self) -> None:
        """The poller: the rating champion, the feature store (and its item
        snapshot, if the item views were materialized again), the sentiment
        champion's version. No request ever waits for this."""
        from mlflow import MlflowClient

        self.rating.refresh()
        self.challenger.refresh()
        if self._api_run_id is not None:
            from portrait.ingest.loader import heartbeat

            try:
                heartbeat(self.engine, self._api_run_id)  # the run's owner is alive
            except Exception as err:  # noqa: BLE001 - the next poll beats again
                log.warning("cannot beat the API run's heartbeat: %s", describe(err))
        reader = self._reader or self._connect_store()
        if reader is not None:
            try:
                reader.refresh_items()
            except Exception as err:  # noqa: BLE001 - requests keep the snapshot they have
                log.warning("cannot refresh the item snapshot: %s", describe(err))
        try:
            self._sentiment_version = str(MlflowClient().get_model_version_by_alias(SENTIMENT, "champion").version)
        except Exception:  # noqa: BLE001 - no champion or no registry: the version shown stays the last one seen
            log.debug("no %s champion version to show", SENTIMENT)

    def _pseudonym(self, user_id: str) -> str:

        try:
            return pseudonymize(user_id, self.key)
        except ValueError:
            raise InvalidArgument("user_id is empty") from None

    def _classify(self, texts: list[str]) -> list[dict]:
        # BentoML's client keeps idle connections longer (aiohttp, 15 s) than the worker's
        # server does (uvicorn, 5 s): a request sent on one the worker already closed
        # is lost, and goes again (classifying is idempotent; the pool may hold a few)
        for attempt in range(3):
            try:
                return self.sentiment_model.predict(texts)
            except Exception as err:
                if attempt < 2 and is_stale_connection(err):
                    continue
                if is_outage(err):
                    raise down(f"sentiment model unavailable: {describe(err)}") from None
                raise
        raise AssertionError("unreachable")

    def _health(self):
        from registry.monitoring import tables

        return tables(self.engine, self.settings)

    def _read_user(self, reader, pseudonym: str) -> tuple[dict, list[str]]:
        """The user's online features and the views among them served past their TTL."""
        user, times = reader.user_read(pseudonym)
        now = time.time()
        stale = reader.stale(times, now)
        observe_freshness(times, stale, now)
        return user, stale

    def _rating_frame(self, reader, user: dict, item_ids: list[str]):
        model = self.rating.get()
        frame = reader.rating_inputs(user, item_ids, time.time())
        schema = model.metadata.get_input_schema()
        if schema is not None:  # exactly the model's inputs: MLflow warns (per request) about extras
            frame = frame[schema.input_names()]
        return frame

    @staticmethod
    def _score(model, frame) -> np.ndarray:
        return model.predict(frame)["rating"].to_numpy()

    def _log(self, route: str, model: str, version, started: float, prediction: dict, **fields) -> None:
        self.request_log.put(Entry(route, model, version, prediction, (time.perf_counter() - started) * 1000, **fields))

    # --- endpoints ---------------------------------------------------------------------

    @bentoml.api(route="/sentiment")
    def sentiment(
        self, texts: Annotated[list[ReviewText], Field(min_length=1, max_length=MAX_TEXTS)]
    ) -> SentimentResponse:
        """Label and class probabilities for each text."""
        started = time.perf_counter()
        results = self._classify(texts)
        self._log_labels("/sentiment", started, texts, results)
        return SentimentResponse(
            results=[Sentiment(label=r["label"], probabilities=r["probabilities"], model=r["model"]) for r in results],
            models=self.versions(_default_version(results)),
        )

    @bentoml.api(route="/rating")
    def rating_of(
        self, user_id: UserId, item_ids: Annotated[list[ItemId], Field(min_length=1, max_length=MAX_ITEMS)]
    ) -> RatingResponse:
        """Predicted rating of each item by this user, from online features."""
        pseudonym = self._pseudonym(user_id)
        started = time.perf_counter()

        def answer(reader):
            unknown = [i for i, row in zip(item_ids, reader.items().rows(item_ids)) if row < 0]
            if unknown:
                raise NotFound(f"unknown item(s): {', '.join(unknown[:10])}")
            user, stale = self._read_user(reader, pseudonym)
            frame = self._rating_frame(reader, user, item_ids)
            version = self.rating.version
            scoring = time.perf_counter()  # what the shadow repeats: the model on these inputs
            ratings = self._score(self.rating.get(), frame)
            model_ms = (time.perf_counter() - scoring) * 1000
            answered = datetime.now(timezone.utc)  # the shadow's entry carries the answer's time
            items = list(item_ids)
            self._log(
                "/rating",
                RATING,
                version,
                started,
                {"ratings": ratings, "stale_features": stale, "model_ms": model_ms},
                features=feature_summary(frame),
                user_id=pseudonym,
                items=items,
            )
            self.shadow.submit(
                self.challenger,
                lambda model: Entry(
                    "/rating",
                    RATING,
                    None,
                    {"ratings": self._score(model, frame), "champion": ratings},
                    0,
                    user_id=pseudonym,
                    logged_at=answered,
                    items=items,
                ),
            )
            return RatingResponse(
                user_id=user_id,
                cold_start=not user,
                ratings=[RatedItem(item_id=i, rating=round(float(r), 3)) for i, r in zip(item_ids, ratings)],
                stale_features=stale,
                models=self.versions(),
            )

        return self._online(answer)

    @bentoml.api(route="/recommend")
    def recommend(
        self, user_id: UserId, k: Annotated[int, Field(ge=1, le=MAX_ITEMS)] = 10, exclude_seen: bool = True
    ) -> RecommendResponse:
        """Top-k items by the rating model's blend (chosen on validation at training):
        what shoppers did after the user's last items, what is chosen with the items
        the user has, closeness to the user's text portrait, popularity
        (serving.ranking); a user with neither a history nor a text profile gets
        the most popular items."""
        from serving.online import user_vector
        from serving.ranking import rank, why

        pseudonym = self._pseudonym(user_id)
        started = time.perf_counter()
        history = self._db(lambda: user_history(self.engine, pseudonym))
        seen = sorted({item for item, _ in history}) if exclude_seen else []

        def answer(reader):
            items = reader.items()
            user, stale = self._read_user(reader, pseudonym)
            excluded = items.rows(seen)
            excluded = excluded[excluded >= 0]
            vector = user.get("user_embedding")
            has_text = vector is not None and len(vector) > 0
            if not has_text and not history:  # nothing known of the user: cold start
                return self._most_popular(user_id, items, excluded, k, stale)
            model, version = self.rating.get(), self.rating.version
            text = user_vector(user, items.dim)[0] if has_text else None
            scoring = time.perf_counter()  # what the shadow repeats: the ranking
            ranked = rank(items, model.unwrap_python_model(), self._graph_rows, history, text, excluded, k)
            model_ms = (time.perf_counter() - scoring) * 1000
            answered = datetime.now(timezone.utc)
            top = [items.item_ids[j] for j in ranked.rows]
            frame = self._rating_frame(reader, user, top)
            ratings = self._score(model, frame)
            prediction = {"scores": ranked.scores, "ratings": ratings, "stale_features": stale, "model_ms": model_ms}
            self._log(
                "/recommend",
                RATING,
                version,
                started,
                prediction,
                features=feature_summary(frame),
                user_id=pseudonym,
                items=top,
            )

            def shadow(challenger) -> Entry:
                other = rank(items, challenger.unwrap_python_model(), self._challenger_rows, history, text, excluded, k)
                overlap = len(set(other.rows.tolist()) & set(ranked.rows.tolist())) / max(len(ranked.rows), 1)
                ids = [items.item_ids[j] for j in other.rows]
                return Entry(
                    "/recommend",
                    RATING,
                    None,
                    {"overlap": overlap},
                    0,
                    user_id=pseudonym,
                    items=ids,
                    logged_at=answered,
                )

            self.shadow.submit(self.challenger, shadow)
            return RecommendResponse(
                user_id=user_id,
                cold_start=False,
                stale_features=stale,
                models=self.versions(),
                items=[
                    Recommendation(
                        item_id=items.item_ids[j],
                        score=round(float(ranked.scores[n]), 4),
                        predicted_rating=round(float(ratings[n]), 3),
                        affinity=_rounded(ranked.parts["affinity"][n]),
                        why=f"{why(ranked.parts, n)}; predicted {ratings[n]:.1f} stars",
                    )
                    for n, j in enumerate(ranked.rows)
                ],
            )

        return self._online(answer)

    def _most_popular(self, user_id: str, items, excluded: np.ndarray, k: int, stale: list[str]) -> RecommendResponse:
        """The cold start: a user without a text profile gets the most reviewed items."""
        rank = items.stats["item_popularity_rank"]
        return RecommendResponse(
            user_id=user_id,
            cold_start=True,
            stale_features=stale,
            models=self.versions(),
            items=[
                Recommendation(
                    item_id=items.item_ids[j],
                    score=float(-rank[j]),
                    predicted_rating=None,
                    affinity=None,
                    why=f"popular: #{int(rank[j])} by reviews",
                )
                for j in items.most_popular(excluded, k)
            ],
        )

    @bentoml.api(route="/profile")
    def profile(self, user_id: UserId) -> Profile:
        """The user's portrait: behaviour, sentiment tendency, interests, segment."""
        from serving.online import segment

        pseudonym = self._pseudonym(user_id)
        reader, (user, stale) = self._online(lambda reader: (reader, self._read_user(reader, pseudonym)))
        if not user:
            raise NotFound(
                "unknown user: no features for this user_id (never seen, not yet materialized, or forgotten)"
            )
        last = user.get("last_activity_unix")
        return Profile(
            user_id=user_id,
            segment=segment(user),
            behavior={k: user.get(k) for k in reader.behavior if not k.endswith("_unix")},
            sentiment_tendency={k: user.get(f"share_{k}") for k in SENTIMENT_LABELS},
            sentiment_source=user.get("sentiment_source"),
            sentiment_reviews=user.get("embedded_review_count"),
            interest_tags=[t for t in (user.get("interest_tags") or "").split(", ") if t],
            aspects=parse_aspects(user.get("interest_tags")),
            last_activity=datetime.fromtimestamp(last, tz=timezone.utc).isoformat() if last else None,
            stale_features=stale,
            models=self.versions(),
        )

    @bentoml.api(route="/reviews")
    def review(
        self,
        user_id: UserId,
        item_id: ItemId,
        rating: Annotated[int, Field(ge=1, le=5)],
        text: ReviewText,
        summary: Annotated[str, Field(max_length=500)] = "",
    ) -> ReviewResponse:
        """Store a new review (raw tables, through ingest's load path), classify its
        sentiment and update the user's online text profile through the Feast push source.
        The item must be in the catalog (404 otherwise: reviews do not create items);
        a user erased by `portrait forget` gets 410 and nothing is stored."""

        pseudonym = self._pseudonym(user_id)
        started = time.perf_counter()
        if not self._db(lambda: item_known(self.engine, item_id)):
            raise NotFound(f"unknown item {item_id}: reviews are taken for catalog items only")
        text, summary = mask_contacts(text.strip()), mask_contacts(summary.strip())
        now = datetime.now(timezone.utc)
        row = review_row(
            user_id=pseudonym,
            item_id=item_id,
            rating=rating,
            summary=summary,
            text=text,
            helpful_votes=0,
            total_votes=0,
            event_timestamp=now,
        )
        # a placeholder text (the platform's, not the shopper's) is stored for its stars
        # but never classified nor pushed into the text profile
        sentiment = None if row.placeholder else self._classify([review_text(summary, text)])[0]
        run_id = self._api_run()
        counts, review_id = self._db(lambda: add_review(self.engine, row, run_id, self.key))
        if counts.forgotten:
            raise Gone("this user was erased (right to be forgotten); their reviews are not stored")
        if review_id is None:
            raise Conflict(f"this user has already reviewed item {item_id}")
        if sentiment is not None:  # the stars are the label the sentiment model is graded by, online
            self._log_labels(
                "/reviews",
                started,
                [review_text(summary, text)],
                [sentiment],
                pseudonym,
                [item_id],
                rating_sentiment(rating),
            )
        placeholder = row.placeholder or (TEMPLATE if counts.placeholders else None)
        if placeholder or sentiment is None:
            return ReviewResponse(
                user_id=user_id,
                item_id=item_id,
                review_id=review_id,
                sentiment=None,
                placeholder=placeholder,
                online_profile_updated=False,
                models=self.versions(None),
            )
        updated = self._push_profile(pseudonym, review_text(summary, text), sentiment["label"], rating, review_id)
        return ReviewResponse(
            user_id=user_id,
            item_id=item_id,
            review_id=review_id,
            sentiment=Sentiment(
                label=sentiment["label"], probabilities=sentiment["probabilities"], model=sentiment["model"]
            ),
            online_profile_updated=updated,
            models=self.versions(_default_version([sentiment])),
        )

    def _log_labels(
        self,
        route: str,
        started: float,
        texts: list[str],
        results: list[dict],
        user: str | None = None,
        items: list[str] | None = None,
        stars_label: str | None = None,
    ) -> None:
        """One log entry per sentiment model that answered (Chinese texts may have their own)."""
        for name in dict.fromkeys(r["name"] for r in results):
            mine = [(t, r) for t, r in zip(texts, results) if r["name"] == name]
            prediction: dict = {"labels": [r["label"] for _, r in mine]}
            if stars_label is not None:
                prediction.update(label=mine[0][1]["label"], stars_label=stars_label)
            features = {"text_chars": [float(len(t)) for t, _ in mine[:20]]}
            self._log(
                route, name, mine[0][1]["version"], started, prediction, features=features, user_id=user, items=items
            )

    def _push_profile(self, pseudonym: str, review: str, model_label: str, rating: int, review_id: int) -> bool:
        """The user's online text profile updated with the new review through the Feast
        push source; False (logged) when the online store failed: the review is stored
        either way, and the answer says which."""
        import pandas as pd

        from serving.online import pushed_text_profile

        def push(reader) -> bool:
            vector = self._embed(review)
            # read-modify-write of the running mean, one writer per user at a time across
            # threads, workers and replicas (concurrent reviews would otherwise lose counts)
            with advisory_lock(self.engine, f"portrait/online-profile/{pseudonym}"):
                user = reader.user(pseudonym)
                # the profile keeps the source its shares were built from
                from_model = (user.get("sentiment_source") or "ratings") != "ratings"
                label = model_label if from_model else rating_sentiment(rating)
                # stamped inside the lock: a store that keeps the newest row (Redis) keeps this one
                update = pushed_text_profile(user, vector, label, datetime.now(timezone.utc))
                reader.store.push("user_text_push", pd.DataFrame({"user_id": [pseudonym], **update}))
            return True

        try:
            return self._online(push)
        except Exception as err:  # noqa: BLE001 - the review is stored: the answer must say so, not 5xx
            log.warning("review %s stored; online profile not updated: %s", review_id, describe(err))
            return False

    def _api_run(self) -> int:
        """This process's API ingest run, opened by the first review (once, whatever
        the number of concurrent first reviews)."""

        with self._run_lock:
            if self._api_run_id is None:
                self._api_run_id = self._db(lambda: open_api_run(self.engine))
            return self._api_run_id

    def _warm_encoder(self) -> None:
        try:
            self._embed("warm-up")
        except Exception as err:  # noqa: BLE001 - /reviews then loads it, and says why if it cannot
            log.warning("cannot load the review encoder yet: %s", describe(err))
        finally:
            self._warmed.set()

    def _embed(self, text: str) -> np.ndarray:

        with self._encoder_lock:
            if self._encoder is None:
                self._encoder = Encoder.load(self.settings.encoder)
        return self._encoder.embed([text])[0]

    @bentoml.api(route="/admin/reload")
    def reload(self) -> ReloadResponse:
        """Load the current champions and the item snapshot now (all are also polled every 30 s)."""
        changed = [RATING] if self.rating.refresh(force=True) else []
        self.challenger.refresh(force=True)
        if self._reader is not None:
            self._online(lambda reader: reader.refresh_items())  # after a materialization: its items now
        sentiment = self.sentiment_model.reload()
        if sentiment.get("changed"):
            changed.append(SENTIMENT)
        return ReloadResponse(models=self.versions(sentiment.get("version")), changed=changed)

    @bentoml.on_shutdown
    def close_api_run(self) -> None:
        """The API's ingest run ends with the process that counted it."""

        if self._api_run_id is not None:
            close_api_run(self.engine, self._api_run_id)

    def __is_ready__(self) -> bool:
        """Ready when the review encoder is loaded and the database and the online
        store answer now: a real read of each, cached for READY_CACHE_S so that probes
        cost nothing. Routes that need a
        missing champion answer 503 with the reason; the stores are needed by all."""
        if not self._warmed.is_set():
            return False  # the encoder is loading: /reviews would wait for it
        with self._ready_lock:
            if time.monotonic() - self._ready_at >= READY_CACHE_S:
                self._ready = self._dependencies_answer()
                self._ready_at = time.monotonic()
            return self._ready

    def _dependencies_answer(self) -> bool:
        import sqlalchemy as sa

        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            self._online(lambda reader: reader.user(READINESS_PROBE_USER))
        except Exception as err:  # noqa: BLE001 - any failure: not ready, and the log says why
            log.warning("not ready: %s", describe(err))
            return False
        return True


def _is_client_error(err: BaseException) -> bool:
    """An error that is the request's fault (answered 4xx), not the store client's."""
    from bentoml.exceptions import BentoMLException

    return isinstance(err, BentoMLException) and int(err.error_code) < 500


def _default_version(results: list[dict]) -> str | None:
    """review-sentiment's version among the results (each names the model that answered)."""
    return next((r["version"] for r in results if r["name"] == SENTIMENT), None)


def _rounded(value: float) -> float | None:
    return round(float(value), 4) if np.isfinite(value) else None


Portrait.add_asgi_middleware(Gate)  # type: ignore[attr-defined]  # added by @bentoml.service
