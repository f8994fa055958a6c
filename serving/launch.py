"""`portrait serve`: `bentoml serve serving.service:Portrait` with two changes a
production server needs and BentoML's CLI does not offer.

- The process manager (circus) is told to take its control and pub/sub channels on
  Unix sockets in the owner-only state directory. BentoML puts them on TCP ports of
  127.0.0.1 without credentials, and the control channel takes `stop`, `quit` and
  new processes (any command, as the service's user) from any local user.
- BentoML's home is the state directory's own (`<state>/bentoml`), unless
  BENTOML_HOME is set: its Prometheus multiprocess directory is then this
  deployment's, which another `bentoml serve` on the host cannot empty.

    python -m serving.launch --host 127.0.0.1 --port 3000
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from portrait.settings import REPO_ROOT, get_settings, private_state_dir

SERVICE = "serving.service:Portrait"


def control_dir(state_dir: Path) -> Path:
    """Where the process manager's sockets live: owner-only, and short enough for a
    Unix socket's path (a private temporary directory when the state's is too long)."""
    path = state_dir / "bentoml-run"
    if len(str(path)) > 80:
        import tempfile

        return Path(tempfile.mkdtemp(prefix="portrait-run-"))  # created 0700
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def private_arbiter(sockets: Path):
    """BentoML's create_standalone_arbiter with ipc:// endpoints under `sockets`."""
    from bentoml._internal.utils.circus import Arbiter, ThreadedArbiter

    def create(watchers: list, *, threaded: bool = False, **kwargs: Any):
        cls = ThreadedArbiter if threaded else Arbiter
        tag = os.getpid()  # two servers on one state directory do not share sockets
        return cls(
            watchers,
            endpoint=f"ipc://{sockets}/circus-{tag}.ctl",
            pubsub_endpoint=f"ipc://{sockets}/circus-{tag}.pub",
            check_delay=kwargs.pop("check_delay", 10),  # as BentoML's own
            **kwargs,
        )

    return create


def main(argv: list[str]) -> None:
    import bentoml._internal.utils.circus as circus_utils
    from bentoml_cli.cli import cli

    os.umask(0o077)  # the service's files (home, metrics, sockets) are the owner's only
    state = private_state_dir(get_settings())
    os.environ.setdefault("BENTOML_HOME", str(state / "bentoml"))
    circus_utils.create_standalone_arbiter = private_arbiter(control_dir(state))
    os.chdir(REPO_ROOT)
    cli.main(["serve", SERVICE, *argv], prog_name="bentoml")


if __name__ == "__main__":
    main(sys.argv[1:])
