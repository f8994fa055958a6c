"""Where the feature build's pure compute runs: in this process, or as Ray tasks
(PORTRAIT_ENGINE=ray), the engine Feast's ray.engine materializes on
(portrait.featurestore.repo.ray_engine).

The functions sent to Ray compute each entity from that entity's rows alone
(compute_user_behavior, compute_user_text_profile, compute_item_text_profile), so
the rows are split by a hash of the entity key and the partitions' results,
concatenated, are the whole's result. compute_item_stats stays in the driver: an
item's popularity rank depends on every other item."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from portrait.settings import Settings

log = logging.getLogger(__name__)

ROWS_PER_PARTITION = 50_000  # input rows per Ray task: enough work to pay for shipping it


@dataclass(frozen=True)
class Compute:
    """Runs a per-entity compute function: locally, or on Ray over partitions."""

    engine: str = "local"
    ray_address: str | None = None
    ray_cpus: int | None = None  # a local Ray's CPUs (Settings.local_ray_cpus)
    rows_per_partition: int = ROWS_PER_PARTITION

    @classmethod
    def of(cls, settings: Settings) -> Compute:
        return cls(settings.engine, settings.ray_address, settings.local_ray_cpus)

    def by_entity(self, fn: Callable[..., pd.DataFrame], key: str, *frames: pd.DataFrame, **kw) -> pd.DataFrame:
        """fn(*frames, **kw); on Ray, every frame is split by a hash of its `key`
        column into the same partitions and fn runs once per partition."""
        rows = sum(len(f) for f in frames)
        if self.engine == "local" or rows == 0:
            return fn(*frames, **kw)
        import ray

        self._connect()
        parts = max(1, min(self._cpus() * 4, -(-rows // self.rows_per_partition)))
        buckets = [pd.util.hash_array(f[key].to_numpy(dtype=object)) % parts for f in frames]
        shared = {name: ray.put(value) for name, value in kw.items()}  # shipped once, not per task
        task = ray.remote(_call)
        futures = [task.remote(fn, [f[b == p] for f, b in zip(frames, buckets)], shared) for p in range(parts)]
        results = [r for r in ray.get(futures) if not r.empty]
        log.info("%s: %d rows in %d Ray tasks", fn.__name__, rows, parts)
        return pd.concat(results, ignore_index=True) if results else fn(*(f.iloc[0:0] for f in frames), **kw)

    def _connect(self) -> None:
        """Join the cluster at ray_address, or start a local Ray of ray_cpus CPUs
        (as Feast's ray.engine does for materialization; one Ray per process)."""
        import ray

        if ray.is_initialized():
            return
        if self.ray_address:
            ray.init(address=self.ray_address, log_to_driver=False)
        else:
            ray.init(num_cpus=self._cpus(), include_dashboard=False, log_to_driver=False)

    def _cpus(self) -> int:
        if self.ray_address:
            import ray

            return max(1, int(ray.cluster_resources().get("CPU", 1)))
        return self.ray_cpus or 1


def _call(fn: Callable[..., pd.DataFrame], frames: list[pd.DataFrame], kw: dict) -> pd.DataFrame:
    """One partition's work, in a Ray worker (object refs in kw arrive resolved
    only at the top level of the arguments, so they are fetched here)."""
    import ray

    return fn(*frames, **{k: ray.get(v) if isinstance(v, ray.ObjectRef) else v for k, v in kw.items()})
