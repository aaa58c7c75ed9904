"""The code levers one by one: the pipeline benchmark under an earlier commit and under this tree, in one run.

    python bench/code_levers.py --before 2801fd4 --size 200 --cap 128 --latency-ms 500
    python bench/code_levers.py --before 2801fd4 --size 2000 --cap 256 --latency-ms 1000 --plain   # the default point

The earlier commit is checked out with ``git worktree`` into a temporary folder and its own
``bench/pipeline.py`` child runs its own code (the child checks where ``reasonmed`` was imported from), in
the same Python environment, against the same simulator settings. Each configuration gets a fresh
Prefect server on a fresh Postgres database (bench/pipeline.py's ``prefect_server``). Configurations:

- ``before``: the earlier commit, Prefect's default server settings (today's figures);
- ``before + server batching``: the earlier commit with the task-run recorder and event persister writing
  200 events per transaction (the settings lever, deploy/README.md);
- ``carried state``: this tree with the same server settings and ``REASONMED_WRITE_BATCH=1`` (one
  transaction per stage write, as before): a question's state read once per shard and carried between its
  stages, ids taken from RETURNING;
- ``carried state + write-behind``: this tree with its default batched writes as well (all levers);
- ``before (again)``: the first configuration again, so the spread of the two says what is noise.

Printed per configuration: CPU ms per LLM call of the client, the Prefect server and Postgres (server and
Postgres including what they finish for the run after the flow returned), their sum, wall / ideal, and
each one's ratio to the mean of the two ``before`` runs; with ``--plain``, also the plain-client baseline
of each run and project wall / plain wall.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checkout import worktree  # noqa: E402
from pipeline import REPO, prefect_server, run_child  # noqa: E402
from prefect_levers import _BATCHED, _all, _postgres, _server  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--before", required=True, help="the commit to compare with (e.g. the last one before the levers)"
    )
    ap.add_argument("--size", type=int, default=200, help="questions per configuration")
    ap.add_argument("--cap", type=int, default=128)
    ap.add_argument("--latency-ms", type=float, default=500.0)
    ap.add_argument("--plain", action="store_true", help="also run the plain-client baseline after each run")
    ap.add_argument("--only", help="configuration names separated by ';' (the two 'before' runs always run)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="reasonmed-code-levers-"))
    print(
        f"{args.size} questions, cap {args.cap}, latency {args.latency_ms:.0f} ms, before = {args.before}; "
        f"load average {os.getloadavg()}",
        flush=True,
    )
    with worktree(args.before) as before:
        configs: dict[str, tuple[Path, dict[str, str]]] = {
            "before": (before, {}),
            "before + server batching": (before, _BATCHED),
            "carried state": (REPO, {**_BATCHED, "REASONMED_WRITE_BATCH": "1"}),
            "carried state + write-behind": (REPO, _BATCHED),
            "before (again)": (before, {}),
        }
        if args.only:
            keep = args.only.split(";")
            configs = {
                k: v for k, v in configs.items() if k.startswith("before") and "+" not in k or k in keep
            }
        results: dict[str, dict[str, Any]] = {}
        for name, (tree, settings) in configs.items():
            with prefect_server(work, settings) as (env, _):
                r = run_child(env, work, args.size, args.cap, args.latency_ms, plain=args.plain, tree=tree)
            results[name] = r
            print(f"JSON {json.dumps({'config': name, 'settings': settings, **r})}", flush=True)
            print(
                f"  {name}: all {_all(r):.2f} ms/call, wall/ideal {r['wall_over_ideal']:.2f}, "
                f"utilisation {r['utilisation']:.3f}, failed {r['failed']}, load {r['load_avg_1m']:.1f}",
                flush=True,
            )

    bases = [results[k] for k in results if k in ("before", "before (again)")]
    base_all = sum(_all(b) for b in bases) / len(bases)
    base_wall = sum(b["wall_over_ideal"] for b in bases) / len(bases)
    print(
        "\n| configuration | client | Prefect server | Postgres | all | all / before | wall/ideal "
        "| wall/ideal / before | utilisation | project / plain wall |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        plain = f"{r['project_over_plain']:.2f}" if "project_over_plain" in r else "-"
        print(
            f"| {name} | {r['client_cpu_ms_per_call']:.2f} | {_server(r):.2f} | {_postgres(r):.2f} | {_all(r):.2f} | "
            f"{_all(r) / base_all:.2f} | {r['wall_over_ideal']:.2f} | {r['wall_over_ideal'] / base_wall:.2f} | "
            f"{r['utilisation']:.3f} | {plain} |"
        )
    print(
        "\nCPU ms per LLM call (server and Postgres including what they did for the run after the flow returned); "
        f"ratios to the mean of the two 'before' runs; load average at the end {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
