"""`make demo`: the whole pipeline, end to end, on the profile in use (the
embedded default). Each step is one `portrait` command a person can run alone;
a rerun skips what is done (ingest and feature builds are incremental, models
are trained only when there is no champion or with --retrain). Training budgets
are epochs, so a rerun on the same data gives the same models. A new version is
promoted only if it beats its own run's baseline (and the champion, if any).

This is a composition root, like the CLI: it runs the stages as `portrait`
commands and is not part of the core.

    python -m portrait.cli.demo [--retrain] [--port 3000] [--lang zh]
    python -m portrait.cli.demo --lang zh     # a Chinese shop (make demo-zh)

The Chinese demo is a second shop with its own state directory (.portrait-zh
unless PORTRAIT_STATE_DIR says otherwise): a SYNTHETIC export of real
online_shopping_10_cats reviews (`portrait sample-export zh`), loaded through the
generic import, embedded and fine-tuned with multilingual-e5-small
(`portrait encoder install`, unless PORTRAIT_ENCODER names another model).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from portrait.settings import REPO_ROOT, get_settings
from registry.models import ASPECT_SENTIMENT, RATING, SENTIMENT

AMAZON = "amazon_musical_instruments_5core/reviews_Musical_Instruments_5.json.gz"
CDNOW = "cdnow_purchases/CDNOW_master.txt"
SEMEVAL = "semeval14_laptops"  # a public aspect-labelled set (the English shop has no aspect labels of its own)
PORTRAIT = str(Path(sys.executable).with_name("portrait"))
DEMO_USER = "A2IBPI20UZIR0U"  # the English shop's most active reviewer


def step(title: str) -> None:
    print(f"\n==> {title}", flush=True)


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    print(f"$ portrait {' '.join(shlex.quote(a) for a in args)}", flush=True)
    return subprocess.run([PORTRAIT, *args], cwd=REPO_ROOT, check=check)


def has_champion(name: str) -> bool:
    return subprocess.run([PORTRAIT, "models", "champion", name], cwd=REPO_ROOT, capture_output=True).returncode == 0


def versions(name: str) -> list[str]:
    out = subprocess.run(
        [PORTRAIT, "models", "list", name], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    return [line.split()[0][1:] for line in out.splitlines() if line.strip().startswith("v")]


def latest_version(name: str) -> str:
    return versions(name)[-1]


def start_service(port: int, state: Path) -> subprocess.Popen:
    pid_file = state / "serve.pid"
    if pid_file.exists():  # a previous demo's service: replace it
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGTERM)
            time.sleep(2)
        except (ProcessLookupError, ValueError, PermissionError):
            pass
    if port_in_use(port):  # another shop's service (the other demo's) would answer /readyz for this one
        raise RuntimeError(f"port {port} is in use by another service (the other shop's demo?): stop it or pass --port")
    # owner-only: the log holds no ids, but it is the service's and nobody else's
    log = os.fdopen(os.open(state / "serve.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w")
    os.chmod(state / "serve.log", 0o600)  # an older log may have been created readable
    proc = subprocess.Popen(
        # serving.launch: bentoml serve with the process manager on Unix sockets, its own BentoML home
        [sys.executable, "-m", "serving.launch", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pid_file.write_text(str(proc.pid))
    return proc


def port_in_use(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_ready(url: str, proc: subprocess.Popen, log: Path | None = None, timeout: float = 300) -> None:
    """Until a started `bentoml serve` answers /readyz; RuntimeError with its log if it dies or stalls."""
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited; its log:\n{log.read_text()[-3000:] if log else ''}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"the service was not ready in {timeout:.0f} s; see {log}")


def english_calls() -> list[tuple[str, str, dict]]:
    return [
        (
            "POST",
            "/sentiment",
            {
                "texts": [
                    "These strings sound bright and stay in tune.",
                    "It broke after two days and support never answered.",
                    "Does the job, nothing special.",
                ]
            },
        ),
        ("POST", "/rating", {"user_id": DEMO_USER, "item_ids": ["B0002E1G5C", "B003VWJ2K8", "B000068NW5"]}),
        ("POST", "/recommend", {"user_id": DEMO_USER, "k": 5, "exclude_seen": True}),
        ("POST", "/recommend", {"user_id": "a-shopper-we-have-never-seen", "k": 3}),
        ("POST", "/profile", {"user_id": DEMO_USER}),
        (
            "POST",
            "/reviews",
            {
                "user_id": "demo-shopper-1",
                "item_id": "B0002E1G5C",
                "rating": 5,
                "text": "Great cable, no hum at all. Write me at demo@example.com",
            },
        ),
        ("POST", "/profile", {"user_id": "demo-shopper-1"}),
    ]


def chinese_calls(export: Path) -> list[tuple[str, str, dict]]:
    """The same calls for the Chinese shop: its most active buyer and items from its export."""
    import csv
    from collections import Counter

    from portrait.ingest import zh_sample

    with open(export, encoding="gb18030", newline="") as f:
        rows = list(csv.DictReader(f))
    buyer_column, item_column = zh_sample.COLUMNS[0], zh_sample.COLUMNS[1]
    buyer = Counter(r[buyer_column] for r in rows).most_common(1)[0][0]
    items = [item for item, _ in Counter(r[item_column] for r in rows).most_common(3)]
    return [
        (
            "POST",
            "/sentiment",
            {
                "texts": [
                    "音质很好，物流也很快，非常满意",
                    "用了两天就坏了，客服也不回复，非常失望",
                    "东西一般，价格还行",
                ]
            },
        ),
        ("POST", "/rating", {"user_id": buyer, "item_ids": items}),
        ("POST", "/recommend", {"user_id": buyer, "k": 5, "exclude_seen": True}),
        ("POST", "/recommend", {"user_id": "一位新顾客", "k": 3}),
        ("POST", "/profile", {"user_id": buyer}),
        (
            "POST",
            "/reviews",
            {
                "user_id": "zh-demo-shopper-1",
                "item_id": items[0],
                "rating": 5,
                "text": "质量很好，做工精细，发货也快。有问题请打我电话 138 0013 8000",
            },
        ),
        ("POST", "/profile", {"user_id": "zh-demo-shopper-1"}),
    ]


def call_every_endpoint(url: str, key: str, calls: list[tuple[str, str, dict]]) -> None:
    import httpx

    headers = {"X-API-Key": key}
    for method, path, body in calls:
        r = httpx.request(method, f"{url}{path}", json=body, headers=headers, timeout=60)
        print(
            f"\n{method} {path}"
            + (f"  {json.dumps(body, ensure_ascii=False)}" if body else "")
            + f"\n<- {r.status_code}"
        )
        try:
            print(json.dumps(r.json(), indent=2, ensure_ascii=False)[:2500])
        except ValueError:
            print(r.text[:1000])


# The Chinese shop's synthetic export spans 2021-2023 (portrait.ingest.zh_sample): its split
def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--retrain", action="store_true", help="train and promote new models even if champions exist")
    parser.add_argument("--port", type=int, help="the service's port (default: 3000, the Chinese shop 3001)")
    parser.add_argument("--lang", choices=["en", "zh"], default="en", help="the English shop or the Chinese one")
    parser.add_argument(
        "--traffic",
        type=int,
        default=300,
        help="shoppers replayed over the API for the model health step (0: skip it)",
    )
    parser.add_argument(
        "--reviews", type=int, default=6000, help="size of the Chinese shop's synthetic export (--lang zh)"
    )
    return parser.parse_args()


def _shop_settings(lang: str):
    """The profile's settings; the Chinese shop gets its own state (database, registry,
    keys) and encoder. Exits when the shared data is not there."""
    if lang == "zh":
        os.environ.setdefault("PORTRAIT_STATE_DIR", str(REPO_ROOT / ".portrait-zh"))
        state = Path(os.environ["PORTRAIT_STATE_DIR"])
        os.environ.setdefault("PORTRAIT_ENCODER", str(state / "encoders" / "multilingual-e5-small"))
        get_settings.cache_clear()
    settings = get_settings()
    data = settings.resolved_data_dir()
    needed = [AMAZON] if lang == "en" else ["online_shopping_10_cats/online_shopping_10_cats.zip"]
    if not all((data / n).exists() for n in needed):
        sys.exit(f"no data found at {data / needed[0]}: set PORTRAIT_DATA_DIR to the folder holding {needed[0]}")
    return settings


def _ingest(args: argparse.Namespace, settings) -> list:
    """Step 2: the shop's data loaded; returns the endpoint calls that fit it."""
    data = settings.resolved_data_dir()
    if args.lang == "en":
        step("2/7 ingest the Amazon reviews and the CDNOW purchases (a rerun loads 0 new rows)")
        run("ingest", "amazon-reviews", str(data / AMAZON))
        if (data / CDNOW).exists():
            run("ingest", "purchases", str(data / CDNOW))
        return english_calls()
    from portrait.ingest import zh_sample

    step("2/7 the Chinese shop: its encoder, its SYNTHETIC export, loaded through the generic import")
    encoder = Path(os.environ["PORTRAIT_ENCODER"])
    if not (encoder / "config.json").exists():
        run("encoder", "install", "multilingual-e5-small", "--to", str(encoder))
    export = settings.state_dir / zh_sample.FILE_NAME
    if not export.exists():
        run("sample-export", "zh", str(export), "--reviews", str(args.reviews))
    run("ingest", "reviews", str(export), "--map", zh_sample.MAPPING, *zh_sample.OPTIONS)
    return chinese_calls(export)


def _train_and_promote(args: argparse.Namespace) -> None:
    """Step 4: each model trained (unless it has a champion) and promoted if it passes the gates."""
    step("4/7 train, register and promote the sentiment and rating models")
    for name, command in ((SENTIMENT, ["train", "sentiment"]), (RATING, ["train", "rating"])):
        if has_champion(name) and not args.retrain:
            print(f"{name} has a champion; not retraining (make demo ARGS=--retrain to train again)")
            continue
        run(*command)  # the default split: quantiles 70/10/20 of each shop's review time
        promoted = run("models", "promote", name, latest_version(name), check=False)
        if promoted.returncode:  # the promote command printed why (baseline or champion gate)
            served = "the champion stays" if has_champion(name) else "nothing is served for it (its routes answer 503)"
            print(f"the new {name} version stays a candidate; {served}")
    run("models", "list")


def _aspects_and_profiles(args: argparse.Namespace, settings) -> None:
    """Step 4b: the aspect-sentiment model from the public aspect set (English shop; it is
    promoted only past its gate: better than the clause rule on test), then the text
    profiles rebuilt with the champions' labels (the first build had only the stars)."""
    step("4b/7 aspect sentiment (where the shop has an aspect-labelled set), text profiles relabelled by the champions")
    labelled = settings.resolved_data_dir() / SEMEVAL
    if args.lang != "en" or not (labelled / "laptops_train_3way.txt").exists():
        print("no aspect-labelled set for this shop: aspects take their clause's sentiment")
    elif has_champion(ASPECT_SENTIMENT) and not args.retrain:
        print(f"{ASPECT_SENTIMENT} has a champion; not retraining")
    else:
        before = versions(ASPECT_SENTIMENT)
        run(
            "train",
            "aspects",
            str(labelled / "laptops_train_3way.txt"),
            "--test",
            str(labelled / "laptops_test_3way.txt"),
        )
        if versions(ASPECT_SENTIMENT) != before:  # registered: it beat the clause rule on validation
            run("models", "promote", ASPECT_SENTIMENT, latest_version(ASPECT_SENTIMENT), check=False)
    run("features", "build")  # a new labeler source rebuilds the text profiles it labels
    run("features", "materialize")


def _serve_and_call(port: int, settings, calls: list) -> str:
    """Steps 5 and 6: the service started and every endpoint called; returns its URL."""
    from portrait.settings import api_keys

    step("5/7 start the BentoML service")
    url = f"http://127.0.0.1:{port}"
    try:
        proc = start_service(port, settings.state_dir)
        wait_ready(url, proc, settings.state_dir / "serve.log")
    except RuntimeError as err:
        sys.exit(str(err))
    step("6/7 call every endpoint")
    call_every_endpoint(url, sorted(api_keys(settings))[0], calls)
    return url


def _traffic(url: str, settings, shoppers: int) -> None:
    """Step 6b: a challenger in shadow, replayed shoppers, then what monitoring sees."""
    from portrait.ops.traffic import replay_pairs, send
    from portrait.settings import api_keys
    from portrait.store import database

    step("6b/7 model health: a challenger in shadow, replayed traffic, monitoring")
    shadowed = has_champion(RATING)
    if shadowed:
        # the demo has one rating model: its copy is the challenger (same answers: agreement 1,
        # and the online rule keeps the champion); a retrained version is a real one. A
        # rerun keeps the challenger it set.
        challenger = subprocess.run(
            [sys.executable, "-c", COPY_CHAMPION, RATING], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.split()[-1]
        run("models", "challenger", RATING, challenger)
        time.sleep(settings.champion_poll_seconds + 1)  # the service's poller loads the challenger
    else:
        print(f"{RATING} has no champion: traffic is replayed without a challenger in shadow")
    key = sorted(api_keys(settings))[0]
    engine = database.engine(settings)
    try:
        pairs = replay_pairs(engine, shoppers)
    finally:
        engine.dispose()
    codes = send(url, key, pairs)
    print("replayed: " + ", ".join(f"{k}: {v}" for k, v in sorted(codes.items())))
    time.sleep(3)  # the request log is written off the request path
    run("monitor")
    if shadowed:
        run("models", "compare", RATING)
    run("models", "history", RATING)


COPY_CHAMPION = """
import sys
from mlflow import MlflowClient
from portrait.settings import get_settings
from registry import tracking
tracking.configure(get_settings())
client = MlflowClient()
try:
    print(client.get_model_version_by_alias(sys.argv[1], "challenger").version)
    sys.exit(0)
except Exception:
    pass
champion = client.get_model_version_by_alias(sys.argv[1], "champion")
copy = client.create_model_version(
    sys.argv[1], champion.source, run_id=champion.run_id,
    tags={"copy_of": champion.version}, description=f"a copy of v{champion.version}, shadowed by the demo",
)
print(copy.version)
"""


def main() -> None:
    args = _arguments()
    os.umask(0o077)  # the state, artifacts and report are the owner's only
    settings = _shop_settings(args.lang)
    started = time.time()

    step("1/7 database: start (embedded PostgreSQL unless PORTRAIT_DATABASE_URL) and migrate")
    run("db", "up")
    run("db", "migrate")
    calls = _ingest(args, settings)
    step("3/7 features: build (incremental), feast apply, materialize")
    run("features", "build")
    run("features", "apply")
    run("features", "materialize")
    _train_and_promote(args)
    _aspects_and_profiles(args, settings)
    url = _serve_and_call(args.port or (3001 if args.lang == "zh" else 3000), settings, calls)
    if args.traffic:
        _traffic(url, settings, args.traffic)
    step("7/7 operations report")
    run("report")
    print("open it in a browser: " + str(settings.state_dir / "report" / "index.html"))
    shop = "" if args.lang == "en" else f"PORTRAIT_STATE_DIR={settings.state_dir} PORTRAIT_ENCODER={settings.encoder} "
    print(f"""
pipeline finished in {time.time() - started:.0f} s.
  service:   {url}  (API key in {settings.state_dir / "api_key"}; docs at {url}/; log {settings.state_dir / "serve.log"})
             stop it with: kill -- -$(cat {settings.state_dir / "serve.pid"})
  MLflow UI: {shop}make mlflow-ui        then open http://127.0.0.1:5000
  Feast UI:  eval "$({shop}.venv/bin/portrait env)" && cd feature_repo && ../.venv/bin/feast ui
  a portrait: {shop}.venv/bin/portrait features get --user {calls[1][2]["user_id"]}
""")


if __name__ == "__main__":
    main()
