"""Serving benchmarks over real HTTP on loopback; the load comes from this
process, the servers run in their own (bentoml serve). Bounded in count and time.
The load comes from aiohttp, whose CPU per request is printed: on a 2-core
machine the client shares the CPU with the server (httpx took 3 ms of CPU per
request, 44% of a core at 150 requests/s; aiohttp 0.4 ms).

1. /sentiment throughput: the sentiment champion with adaptive batching against
   the same model without batching (one forward pass per request), 32 concurrent
   clients sending one review each, side by side; and, for scale, the same two
   in process (no HTTP): one forward pass of 32 texts against 32 of one text,
   the most that batching can gain on this machine's CPU.
2. /recommend latency at a fixed request rate (100 candidates per request):
   p50 / p99.
3. Isolation: /recommend p99 at that rate alone, then while 8 clients keep
   /sentiment saturated with maximum-size batches (64 texts of 5,000 characters),
   side by side in one run; the ratio (target <= 3x).
4. Reads beside writes, on each online store (the demo's PostgreSQL one, and Redis
   with --redis-url, materialized there first): readers of /recommend, /profile and
   /rating at a fixed rate alone, then beside 3 clients posting new reviews; the
   error rate of both (target 0) and the readers' p99 ratio. The reviews come from
   bench users who are forgotten afterwards (`portrait forget`'s code path).

5. Model health's cost: /recommend at the same fixed rate against a service with the
   request log off and no shadow, then against one with the log on and a challenger
   (a copy of the champion) shadowed on the default share of requests, alternating
   twice in one run; the pooled p99 ratio (target <= 1.2x).

Each server gets its own BENTOML_HOME (a temporary directory), so another
`bentoml serve` on the host cannot touch its metrics or state.

Needs the demo's state: promoted champions and materialized features.

    .venv/bin/python bench/serving.py [--seconds 20] [--rate 20] [--redis-url redis://127.0.0.1:6379/14]
    .venv/bin/python bench/serving.py --only mixed     (part 4 alone)
    .venv/bin/python bench/serving.py --only health    (part 5 alone)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import common  # bench/common.py (bench/ is on sys.path when a script runs)
import numpy as np

from portrait.cli.demo import wait_ready

REPO = Path(__file__).resolve().parents[1]
BENTOML = str(Path(sys.executable).with_name("bentoml"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(service: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    import tempfile

    port = free_port()
    home = tempfile.mkdtemp(prefix="portrait-bench-bentoml-")
    proc = subprocess.Popen(
        [BENTOML, "serve", service, "--port", str(port), "--host", "127.0.0.1"],
        cwd=REPO,
        env={**os.environ, **(env or {}), "BENTOML_HOME": home},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
    except RuntimeError as err:
        stop(proc)
        sys.exit(f"{service}: {err}; run `make demo` first (champions promoted, features materialized)")
    return proc, url


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def review_texts(n: int) -> list[str]:
    import sqlalchemy as sa

    from portrait.settings import get_settings
    from portrait.text.encoder import review_text

    engine = common.engine(get_settings())
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT summary, text FROM reviews ORDER BY review_id LIMIT :n"), {"n": n}).all()
    return [review_text(s, t)[:1000] for s, t in rows]


def cpu_seconds() -> float:
    """CPU time of this process (the load generator) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def post(http: aiohttp.ClientSession, url: str, body, headers: dict) -> bool:
    async with http.post(url, json=body, headers=headers) as r:
        await r.read()
        return r.status == 200


async def closed_loop(
    url: str, path: str, bodies: list, clients: int, seconds: float, headers: dict
) -> tuple[int, float, int]:
    """`clients` concurrent clients, each sending its next request when the last returns."""
    done, errors = 0, 0
    deadline = time.perf_counter() + seconds

    async def client(i: int, http: aiohttp.ClientSession) -> None:
        nonlocal done, errors
        n = i
        while time.perf_counter() < deadline:
            ok = await post(http, f"{url}{path}", bodies[n % len(bodies)], headers)
            n += clients
            done, errors = done + ok, errors + (not ok)

    start_t = time.perf_counter()
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=clients), timeout=aiohttp.ClientTimeout(total=60)
    ) as http:
        await asyncio.gather(*(client(i, http) for i in range(clients)))
    return done, time.perf_counter() - start_t, errors


async def open_loop(
    url: str, path: str, bodies: list, rate: float, seconds: float, headers: dict
) -> tuple[list[float], int]:
    """Requests sent at a fixed rate whatever the answers do; latency of each."""
    return await open_loop_mixed(url, [(path, body) for body in bodies], rate, seconds, headers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rate", type=float, default=20, help="recommend requests per second")
    parser.add_argument("--redis-url", help="also run part 4 on a Redis online store (materialized there first)")
    parser.add_argument("--only", choices=["mixed", "health"], help="run part 4 or part 5 alone")
    args = parser.parse_args()
    if args.only == "mixed":
        return mixed_runs(args)
    if args.only == "health":
        return health_overhead(args)
    texts = review_texts(256)

    proc, url = start("serving.service:SentimentModel")
    try:
        bodies = [{"texts": [t]} for t in texts]
        results = {}
        for name, path in (("batched", "/predict"), ("unbatched", "/predict_unbatched")):
            asyncio.run(closed_loop(url, path, bodies[:64], args.clients, 3, {}))  # warm-up
            cpu = cpu_seconds()
            done, elapsed, errors = asyncio.run(closed_loop(url, path, bodies, args.clients, args.seconds, {}))
            results[name] = (done / elapsed, errors, (cpu_seconds() - cpu) / max(done, 1) * 1000)
    finally:
        stop(proc)
    print(f"/sentiment, {args.clients} concurrent clients, 1 real review per request, {args.seconds:.0f} s each:")
    for name, (rate, errors, client_ms) in results.items():
        print(f"  {name:<10}{rate:>8.1f} texts/s  ({errors} errors; load generator {client_ms:.2f} ms CPU per request)")
    print(f"  ratio batched / unbatched: {results['batched'][0] / results['unbatched'][0]:.1f}x (target >= 3x)")
    one, batch = forward_ceiling(texts)
    print(
        f"  in process, no HTTP: batches of 32 {batch:.1f} texts/s, one text per forward {one:.1f} texts/s: "
        f"{batch / one:.1f}x, the most batching can gain here"
    )

    from portrait.settings import api_keys, get_settings

    headers = {"X-API-Key": sorted(api_keys(get_settings()))[0]}
    proc, url = start("serving.service:Portrait")
    try:
        raw_users = _raw_user_ids(200)
        recommend_bodies: list[dict] = [{"user_id": u, "k": 10} for u in raw_users]
        asyncio.run(open_loop(url, "/recommend", recommend_bodies, args.rate, 3, headers))  # warm-up
        alone, errors = asyncio.run(open_loop(url, "/recommend", recommend_bodies, args.rate, args.seconds, headers))
        if not alone:
            sys.exit(f"/recommend answered no request successfully ({errors} errors)")
        ms = np.array(alone) * 1000
        print(
            f"/recommend at {args.rate:.0f} requests/s for {args.seconds:.0f} s (100 candidates ranked, k=10): "
            f"p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, "
            f"{len(ms)} answered, {errors} errors (target p99 <= 50 ms)"
        )
        loaded, loaded_errors, sentiment_done = asyncio.run(
            beside_sentiment_load(url, headers, recommend_bodies, texts, args.rate, args.seconds)
        )
    finally:
        stop(proc)
    if not loaded:
        sys.exit(f"/recommend answered nothing under /sentiment load ({loaded_errors} errors)")
    idle_p99, busy_p99 = np.percentile(ms, 99), np.percentile(np.array(loaded) * 1000, 99)
    print(
        f"isolation: /recommend p99 alone {idle_p99:.1f} ms, beside 8 clients saturating /sentiment with "
        f"64 x 5,000-character batches {busy_p99:.1f} ms ({len(loaded)} answered, {loaded_errors} errors; "
        f"{sentiment_done} sentiment batches served): ratio {busy_p99 / idle_p99:.2f}x (target <= 3x)"
    )
    mixed_runs(args)


def mixed_runs(args) -> None:
    """Part 4 on each online store."""
    stores: list[tuple[str, dict[str, str]]] = [("postgres", {})]
    if args.redis_url:
        env = {"PORTRAIT_REDIS_URL": args.redis_url}
        subprocess.run(
            [str(Path(sys.executable).with_name("portrait")), "features", "materialize", "--full"],
            cwd=REPO,
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        stores.append(("redis", env))
    for name, env in stores:
        mixed_run(name, env, args.rate, args.seconds)
    health_overhead(args)


def health_overhead(args) -> None:
    """Part 5: /recommend p99 with the request log and the shadow off, then on."""
    from mlflow import MlflowClient

    from portrait.settings import api_keys, get_settings
    from registry import tracking

    tracking.configure(get_settings())
    client = MlflowClient()
    champion = client.get_model_version_by_alias("rating-predictor", "champion")
    copy = client.create_model_version(
        "rating-predictor", str(champion.source), run_id=champion.run_id, tags={"copy_of": champion.version}
    )
    client.set_registered_model_alias("rating-predictor", "challenger", copy.version)
    headers = {"X-API-Key": sorted(api_keys(get_settings()))[0]}
    bodies = [{"user_id": u, "k": 10} for u in _raw_user_ids(200)]
    # off, on, off, on: a p99 of a few hundred requests moves by 20% between runs on a
    # 2-core machine; alternating and pooling keeps a slow minute from landing on one side
    runs: dict[str, tuple[list[float], int]] = {"off": ([], 0), "on": ([], 0)}
    settings = {
        "off": {"PORTRAIT_REQUEST_LOG": "false", "PORTRAIT_SHADOW_SHARE": "0"},
        "on": {"PORTRAIT_REQUEST_LOG": "true"},  # the default share of shadowed requests
    }
    rounds = []
    try:
        for name in ("off", "on") * 2:
            proc, url = start("serving.service:Portrait", settings[name])
            try:
                asyncio.run(open_loop(url, "/recommend", bodies, args.rate, 3, headers))  # warm-up
                latencies, errors = asyncio.run(open_loop(url, "/recommend", bodies, args.rate, args.seconds, headers))
            finally:
                stop(proc)
            runs[name] = (runs[name][0] + latencies, runs[name][1] + errors)
            rounds.append(np.percentile(np.array(latencies) * 1000, 99))
    finally:
        client.delete_registered_model_alias("rating-predictor", "challenger")
    p99 = {name: np.percentile(np.array(lat) * 1000, 99) for name, (lat, _) in runs.items()}
    p50 = {name: np.percentile(np.array(lat) * 1000, 50) for name, (lat, _) in runs.items()}
    print(
        f"model health's cost: /recommend at {args.rate:.0f}/s, 2 x {args.seconds:.0f} s each, alternating; "
        f"log and shadow off: p50 {p50['off']:.1f} ms, p99 {p99['off']:.1f} ms ({runs['off'][1]} errors); log on "
        f"and a challenger shadowed (PORTRAIT_SHADOW_SHARE={get_settings().shadow_share}): p50 {p50['on']:.1f} ms, p99 {p99['on']:.1f} ms "
        f"({runs['on'][1]} errors): p99 ratio {p99['on'] / p99['off']:.2f}x (target <= 1.2x); per round "
        f"p99 off/on {rounds[0]:.1f}/{rounds[1]:.1f}, {rounds[2]:.1f}/{rounds[3]:.1f} ms"
    )


def mixed_run(store: str, env: dict, rate: float, seconds: float) -> None:
    """Readers alone, then beside 3 writers, against one service on `store`."""
    import uuid

    from portrait.settings import api_keys, get_settings

    headers = {"X-API-Key": sorted(api_keys(get_settings()))[0]}
    users = _raw_user_ids(60)
    items = catalog_items(40)
    reads = [
        req
        for i, u in enumerate(users)
        for req in (
            ("/recommend", {"user_id": u, "k": 10}),
            ("/profile", {"user_id": u}),
            ("/rating", {"user_id": u, "item_ids": items[i % len(items) : i % len(items) + 5]}),
        )
    ]
    writers = [f"bench-writer-{uuid.uuid4().hex[:8]}-{w}" for w in range(30)]
    writes = [
        ("/reviews", {"user_id": u, "item_id": i, "rating": 1 + n % 5, "text": f"bench mixed review {n}"})
        for n, (u, i) in enumerate((u, i) for i in items for u in writers)
    ]
    proc, url = start("serving.service:Portrait", env)
    try:
        asyncio.run(open_loop_mixed(url, reads, rate, 3, headers))  # warm-up
        alone, alone_errors = asyncio.run(open_loop_mixed(url, reads, rate, seconds, headers))
        (beside, beside_errors), (written, write_errors) = asyncio.run(
            beside_writers(url, headers, reads, writes, rate, seconds)
        )
    finally:
        stop(proc)
        forget_users(writers, env)
    if not alone or not beside:
        sys.exit(f"{store}: reads answered nothing ({alone_errors} / {beside_errors} errors)")
    p99_alone, p99_beside = np.percentile(np.array(alone) * 1000, 99), np.percentile(np.array(beside) * 1000, 99)
    total = len(alone) + len(beside) + alone_errors + beside_errors + written + write_errors
    errors = alone_errors + beside_errors + write_errors
    print(
        f"reads beside writes ({store} online store): reads at {rate:.0f}/s (recommend, profile, rating) "
        f"alone p99 {p99_alone:.1f} ms ({len(alone)} answered), beside 3 writers p99 {p99_beside:.1f} ms "
        f"({len(beside)} answered; {written} reviews written): ratio {p99_beside / p99_alone:.2f}x; "
        f"errors {errors} of {total} requests ({errors / max(total, 1):.2%}, target 0)"
    )


async def open_loop_mixed(url: str, requests: list, rate: float, seconds: float, headers: dict):
    """Requests (path, body) sent in turn at a fixed rate whatever the answers do;
    latency of each answered one, and the number of errors."""
    latencies, errors = [], 0

    async def one(http: aiohttp.ClientSession, path: str, body) -> None:
        nonlocal errors
        t = time.perf_counter()
        if await post(http, f"{url}{path}", body, headers):
            latencies.append(time.perf_counter() - t)
        else:
            errors += 1

    tasks = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        t0 = time.perf_counter()
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, i / rate - (time.perf_counter() - t0)))
            path, body = requests[i % len(requests)]
            tasks.append(asyncio.create_task(one(http, path, body)))
        await asyncio.gather(*tasks)
    return latencies, errors


async def beside_writers(url, headers, reads, writes, rate, seconds, writers: int = 3):
    """Reads at `rate` while `writers` clients post the reviews in `writes` one after another."""
    queue = list(reversed(writes))
    counts = {"ok": 0, "errors": 0}
    deadline = time.perf_counter() + seconds + 4

    async def writer(http: aiohttp.ClientSession) -> None:
        while queue and time.perf_counter() < deadline:
            path, body = queue.pop()
            counts["ok" if await post(http, f"{url}{path}", body, headers) else "errors"] += 1

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        load = asyncio.gather(*(writer(http) for _ in range(writers)))
        await asyncio.sleep(2)  # the writers under way before the first measured read
        measured = await open_loop_mixed(url, reads, rate, seconds, headers)
        await load
    return measured, (counts["ok"], counts["errors"])


def catalog_items(n: int) -> list[str]:
    import sqlalchemy as sa

    from portrait.settings import get_settings

    engine = common.engine(get_settings())
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT item_id FROM items ORDER BY item_id LIMIT :n"), {"n": n}).scalars())


def forget_users(users: list[str], env: dict) -> None:
    """Erase the bench's writers (database and online store), as `portrait forget` does."""
    os.environ.update(env)
    from portrait.featurestore.repo import feature_store
    from portrait.ops.forget import forget
    from portrait.privacy.idkey import verified_id_key
    from portrait.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    engine = common.engine(settings)
    store = feature_store(settings)
    key = verified_id_key(settings, engine)
    for user in users:
        forget(engine, store, user, key)
    engine.dispose()
    for name in env:
        os.environ.pop(name)
    get_settings.cache_clear()


async def beside_sentiment_load(url, headers, recommend_bodies, texts, rate, seconds):
    """/recommend latencies at `rate` while 8 clients send maximum-size /sentiment batches."""
    import importlib.util

    # the API's own limits; `serving` here would be this script, so the file is loaded by path
    spec = importlib.util.spec_from_file_location("api_schemas", REPO / "serving" / "schemas.py")
    assert spec is not None and spec.loader is not None
    schemas = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(schemas)
    MAX_TEXT_CHARS, MAX_TEXTS = schemas.MAX_TEXT_CHARS, schemas.MAX_TEXTS
    long_texts = [(t * (MAX_TEXT_CHARS // max(len(t), 1) + 1))[:MAX_TEXT_CHARS] for t in texts[:MAX_TEXTS]]
    heavy = [{"texts": long_texts}]
    saturate = asyncio.create_task(closed_loop(url, "/sentiment", heavy, 8, seconds + 6, headers))
    await asyncio.sleep(3)  # the sentiment worker busy before the first measured request
    latencies, errors = await open_loop(url, "/recommend", recommend_bodies, rate, seconds, headers)
    done, _, _ = await saturate
    return latencies, errors, done


def forward_ceiling(texts: list[str]) -> tuple[float, float]:
    """texts/s of the sentiment champion in this process, one text per call and
    32 per call (the same pyfunc the service calls)."""
    import pandas as pd

    from portrait.settings import get_settings
    from registry import tracking
    from registry.models import SENTIMENT, load

    tracking.configure(get_settings())
    model, _ = load(SENTIMENT)
    rates = []
    for size in (1, 32):
        model.predict(pd.DataFrame({"text": texts[:size]}))  # warm-up
        n = 64 if size == 1 else len(texts)
        start = time.perf_counter()
        for i in range(0, n, size):
            model.predict(pd.DataFrame({"text": texts[i : i + size]}))
        rates.append(n / (time.perf_counter() - start))
    return rates[0], rates[1]


def _raw_user_ids(n: int) -> list[str]:
    """Shop user ids from the raw data file (the service pseudonymizes them)."""
    import gzip
    import json

    from portrait.settings import get_settings

    path = (
        get_settings().resolved_data_dir()
        / "amazon_musical_instruments_5core"
        / "reviews_Musical_Instruments_5.json.gz"
    )
    ids: list[str] = []
    with gzip.open(path, "rt") as f:
        for line in f:
            uid = json.loads(line)["reviewerID"]
            if uid not in ids:
                ids.append(uid)
            if len(ids) >= n:
                break
    return ids


if __name__ == "__main__":
    with common.recorded("serving"):
        main()
