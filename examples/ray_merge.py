"""Ray workers log metrics; the driver merges what they return. Run: python examples/ray_merge.py

Each remote worker keeps its own ``MetricsLogger`` and returns ``logger.reduce()`` at
the end of every round: a dict of ``Stats``, which pickle as plain data, so they pass
through Ray's object store as they are. The driver merges them with
``merge_and_log_n_dicts`` (windows per index across workers, lifetime sums adding only
what is new since each worker's last reduce) and reports ``driver.reduce()``.

A worker's ``get_state()`` (plain data: floats, lists, dicts) travels the same way, for
a checkpoint, or to rebuild the worker's logger on the driver with ``set_state``.
"""

from __future__ import annotations

import random
import sys
from typing import Any

from fusedstats import MetricsLogger


class EnvWorker:
    """Plays some episodes per round and logs what a rollout worker logs."""

    def __init__(self, index: int, seed: int) -> None:
        self.index = index
        self.rng = random.Random(f"{seed}/{index}")
        self.logger = MetricsLogger()

    def run(self, episodes: int) -> dict[str, Any]:
        """Logs ``episodes`` episodes; returns this round's ``reduce()`` (Stats leaves)."""
        for _ in range(episodes):
            length = self.rng.randint(10, 200)
            ret = self.rng.gauss(10.0 + self.index, 3.0)
            self.logger.log_value("episode_return_mean", ret, window=20)
            self.logger.log_value("episode_return_max", ret, reduce="max", window=20)
            self.logger.log_value("env_steps", length, reduce="sum")  # lifetime sum
            self.logger.log_value("episode_lengths", length, reduce=None)  # a list per round
            self.logger.log_value(("timers", "step_ms"), self.rng.uniform(1.0, 3.0))  # EMA
        return self.logger.reduce()

    def get_state(self) -> dict[str, Any]:
        return self.logger.get_state()


def merge_workers(
    n_workers: int = 4, rounds: int = 3, episodes: int = 25, seed: int = 0, *, remote: bool = True
) -> dict[str, Any]:
    """Runs ``rounds`` rounds of ``n_workers`` workers (Ray actors when ``remote``, else
    plain objects in this process, for comparison) and merges their results on the
    driver. Needs ``ray.init()`` first when ``remote``.

    Returns:
        ``{"per_round": [driver.reduce(return_stats_obj=False) after each round],
        "states": [each worker's get_state() at the end]}``.
    """
    if remote:
        import ray

        if __name__ != "__main__":
            # Loaded from its file (as the tests do), this module cannot be imported by
            # name in Ray's worker processes: send its classes by value.
            ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        actor = ray.remote(EnvWorker)
        workers = [actor.remote(i, seed) for i in range(n_workers)]

        def gather(method: str, *args: Any) -> list[Any]:
            return list(ray.get([getattr(w, method).remote(*args) for w in workers]))
    else:
        local = [EnvWorker(i, seed) for i in range(n_workers)]

        def gather(method: str, *args: Any) -> list[Any]:
            return [getattr(w, method)(*args) for w in local]

    driver = MetricsLogger()
    per_round = []
    for _ in range(rounds):
        results = gather("run", episodes)  # each: one worker's logger.reduce()
        driver.merge_and_log_n_dicts(results, key="env_runners")
        per_round.append(driver.reduce(return_stats_obj=False))
    return {"per_round": per_round, "states": gather("get_state")}


def main() -> None:
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    try:
        out = merge_workers()
    finally:
        ray.shutdown()
    last = out["per_round"][-1]["env_runners"]
    print(f"env steps (all workers, lifetime): {last['env_steps']}")
    print(f"episode return (window 20, merged): {last['episode_return_mean']:.3f}")
    print(f"episodes in the last round: {len(last['episode_lengths'])}")
    # A worker's state, rebuilt on the driver.
    worker0 = MetricsLogger()
    worker0.set_state(out["states"][0])
    print(f"worker 0 env steps: {worker0.peek('env_steps')}")


if __name__ == "__main__":
    main()
