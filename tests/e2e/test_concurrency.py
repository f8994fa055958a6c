"""Several clients writing and reading at once over real HTTP, on both online stores
(Redis in the local profile, PostgreSQL in the production profile): no 5xx, every
acknowledged review stored once, the online profile's count equal to the stored
count, a broken store connection seen by /readyz and recovered from without a
restart, and nothing but the API port listening."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.e2e
READER = "A2IBPI20UZIR0U"  # a real reviewer of the first 400 lines
ITEM = "1384719342"


@pytest.fixture(params=["redis-local", "postgres-production"])
def any_deployment(request):
    return request.getfixturevalue("deployment" if request.param == "redis-local" else "pg_deployment")


def catalog() -> list[str]:
    from tests.helpers.data import real_lines

    return sorted({json.loads(line)["asin"] for line in real_lines(400)})


def app_engine(d) -> sa.Engine:
    from portrait.settings import Settings
    from portrait.store import database

    url = d.env.get("PORTRAIT_DATABASE_URL")
    settings = Settings(state_dir=Path(d.env["PORTRAIT_STATE_DIR"]), database_url=url)
    return sa.create_engine(
        database.server_url(settings) if url is None else url.replace("postgresql:", "postgresql+psycopg:")
    )


def stored(d, markers: list[str]) -> Counter:
    """How many stored reviews carry each marker text."""
    engine = app_engine(d)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT text FROM reviews WHERE text = ANY(:m)"), {"m": markers}).scalars()
            return Counter(rows)
    finally:
        engine.dispose()


def post(client: httpx.Client, d, path: str, body: dict) -> httpx.Response:
    return client.post(f"{d.url}{path}", json=body, headers=d.headers(), timeout=60)


def test_writers_and_readers_together_get_no_5xx_and_lose_nothing(any_deployment):
    """3 clients posting new reviews beside 4 readers of /recommend, /profile and
    /rating for 12 s (the audit's mix that answered 19-97% 500s and wedged the
    routes for minutes)."""
    d = any_deployment
    items, stop = catalog(), threading.Event()
    writes: list[tuple[str, int]] = []
    reads: Counter = Counter()
    lock = threading.Lock()

    def writer(w: int) -> None:
        with httpx.Client() as client:
            n = 0
            while not stop.is_set():
                user, item = f"mixed-{uuid.uuid4().hex[:6]}-{w}", items[n % len(items)]
                marker = f"mixed-load review {uuid.uuid4().hex}"
                r = post(client, d, "/reviews", {"user_id": user, "item_id": item, "rating": 4, "text": marker})
                with lock:
                    writes.append((marker, r.status_code))
                n += 1

    def reader(k: int) -> None:
        routes = [
            ("/recommend", {"user_id": READER, "k": 5}),
            ("/profile", {"user_id": READER}),
            ("/rating", {"user_id": READER, "item_ids": [ITEM]}),
        ]
        with httpx.Client() as client:
            i = k
            while not stop.is_set():
                path, body = routes[i % len(routes)]
                status = post(client, d, path, body).status_code
                with lock:
                    reads[status] += 1
                i += 1

    with cf.ThreadPoolExecutor(7) as pool:
        futures = [pool.submit(writer, w) for w in range(3)] + [pool.submit(reader, k) for k in range(4)]
        time.sleep(12)
        stop.set()
        for f in futures:
            f.result()
    write_codes = Counter(code for _, code in writes)
    assert set(reads) == {200}, reads
    assert set(write_codes) == {200}, write_codes
    assert len(writes) >= 10 and sum(reads.values()) >= 40, (write_codes, reads)
    counts = stored(d, [m for m, _ in writes])
    assert all(counts[m] == 1 for m, code in writes if code == 200)  # acknowledged: stored once
    assert all(counts[m] == 0 for m, code in writes if code >= 500)  # answered 5xx: not stored
    # and the service answers correctly right after
    with httpx.Client() as client:
        assert post(client, d, "/recommend", {"user_id": READER, "k": 3}).status_code == 200
        assert post(client, d, "/profile", {"user_id": READER}).json()["user_id"] == READER


def test_concurrent_reviews_of_one_user_all_reach_the_online_profile(any_deployment):
    """10 reviews at once by each of 3 new users (different items): the online text
    profile counts 10 for each, as the database does (was 8, 7, 8: lost updates)."""
    d = any_deployment
    items = catalog()[:10]
    users = [f"burst-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    jobs = [(u, i) for u in users for i in items]

    def send(job):
        user, item = job
        with httpx.Client() as client:
            body = {"user_id": user, "item_id": item, "rating": 2, "text": f"burst {user} {item}"}
            return post(client, d, "/reviews", body)

    with cf.ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(send, jobs))
    assert [r.status_code for r in answers] == [200] * len(jobs), [r.text for r in answers if r.status_code != 200]
    assert all(r.json()["online_profile_updated"] for r in answers)
    counts = stored(d, [f"burst {u} {i}" for u, i in jobs])
    with httpx.Client() as client:
        for user in users:
            assert sum(counts[f"burst {user} {i}"] for i in items) == 10
            profile = post(client, d, "/profile", {"user_id": user}).json()
            assert profile["sentiment_reviews"] == 10, profile
            assert profile["sentiment_tendency"]["negative"] == pytest.approx(1.0)


def _terminate_online_store_sessions(d) -> int:
    """Kill the service's sessions to the Feast database (what an admin, a failover or
    a restart of PostgreSQL does to them); returns how many."""
    from portrait.settings import Settings
    from portrait.store import database

    settings = Settings(state_dir=Path(d.env["PORTRAIT_STATE_DIR"]), database_url=d.env["PORTRAIT_DATABASE_URL"])
    engine = sa.create_engine(
        d.env["PORTRAIT_DATABASE_URL"].replace("postgresql:", "postgresql+psycopg:"), isolation_level="AUTOCOMMIT"
    )
    try:
        with engine.connect() as conn:
            return len(
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :db AND pid <> pg_backend_pid()"
                    ),
                    {"db": database.database_name(settings, "feast")},
                ).all()
            )
    finally:
        engine.dispose()


def test_killed_online_store_sessions_are_replaced_without_an_error(pg_deployment):
    """The PostgreSQL online store's connections killed under the running service:
    the next requests are served on fresh connections (no 5xx, no restart)."""
    d = pg_deployment
    with httpx.Client() as client:
        assert post(client, d, "/recommend", {"user_id": READER, "k": 3}).status_code == 200
        assert _terminate_online_store_sessions(d) >= 1
        codes = Counter(post(client, d, "/profile", {"user_id": READER}).status_code for _ in range(20))
        codes.update(post(client, d, "/recommend", {"user_id": READER, "k": 3}).status_code for _ in range(10))
    assert codes == Counter({200: 30}), codes
    assert httpx.get(f"{d.url}/readyz").status_code == 200


def test_readyz_follows_the_online_store_and_routes_recover(deployment):
    """Redis stopped under the service: /readyz says not ready within a few seconds
    (it said ready while every feature route failed); started again: ready, and the
    routes answer without a restart."""
    d = deployment

    def ready_within(expected: int, seconds: float) -> bool:
        deadline = time.time() + seconds
        while time.time() < deadline:
            if httpx.get(f"{d.url}/readyz", timeout=30).status_code == expected:
                return True
            time.sleep(0.5)
        return False

    assert ready_within(200, 10)
    d.redis.stop()
    try:
        assert ready_within(503, 10)
    finally:
        d.redis.start()
    assert ready_within(200, 30)
    with httpx.Client() as client:
        assert post(client, d, "/recommend", {"user_id": READER, "k": 3}).status_code == 200
        assert post(client, d, "/profile", {"user_id": READER}).status_code == 200


def test_only_the_api_port_listens(any_deployment):
    """BentoML's process manager (circus) takes commands on its control channel; on
    a TCP port anyone on the host could stop the service or start processes. Every
    process of the service listens on nothing but the API port; the control channel
    is a Unix socket in the owner-only state directory."""
    import psutil

    d = any_deployment
    api_port = int(d.url.rsplit(":", 1)[1])
    root = psutil.Process(d.proc.pid)
    tree = [root, *root.children(recursive=True)]
    listening = {
        (c.laddr.ip, c.laddr.port)
        for p in tree
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }
    assert listening and {port for _, port in listening} == {api_port}, listening
    state = Path(d.env["PORTRAIT_STATE_DIR"])
    unix = {c.laddr for p in tree for c in p.net_connections(kind="unix") if c.laddr}
    assert any(path.startswith(str(state)) and "circus" in path for path in unix), unix


def test_the_state_directory_is_owner_only_and_bentoml_home_is_its_own(pg_deployment):
    """No BENTOML_HOME given: the service's home (and so its Prometheus multiprocess
    directory, which another `bentoml serve` on the host would empty) is in the state
    directory; the state directory and what is in it are the owner's only."""
    import psutil

    d = pg_deployment
    state = Path(d.env["PORTRAIT_STATE_DIR"])
    assert (state / "bentoml").is_dir()
    workers = [p for p in psutil.Process(d.proc.pid).children(recursive=True)]
    dirs = {p.environ().get("PROMETHEUS_MULTIPROC_DIR") for p in workers} - {None}
    assert dirs and all(x.startswith(str(state / "bentoml")) for x in dirs), dirs
    assert os.stat(state).st_mode & 0o066 == 0, oct(os.stat(state).st_mode)  # nobody else lists or reads it
    for path in (state / "mlartifacts", state / "bentoml"):
        if path.exists():
            assert os.stat(path).st_mode & 0o077 == 0, (path, oct(os.stat(path).st_mode))
