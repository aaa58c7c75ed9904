"""Screenshot the Prefect UI: the latest completed nightly-growth run and its report, in headless Chromium.

    python deploy/screenshot.py --ui http://127.0.0.1:4200 --out docs/img/prefect-nightly.png

Finds the nightly deployment, its latest completed flow run and that run's ``dataset-growth`` artifact
through the REST API, lets Debian's ``chromium`` render three pages, and stacks them into one PNG: the
deployment's page (its cron schedule and timezone, concurrency limit, work pool and runs), the run's page
(state, deployment, work pool, and the run graph with its ingest, build and export children and the
artifact marker), and the artifact's page (the rendered growth report). Chromium runs with a
throwaway profile and every background service off, so its only traffic is to the Prefect server.
Not part of CI: it needs a browser and a server with runs.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def deployment_id(api: str, deployment: str) -> str:
    dep = httpx.get(f"{api}/deployments/name/{deployment}", timeout=30)
    dep.raise_for_status()
    return str(dep.json()["id"])


def latest_completed_run(api: str, deployment: str) -> dict:
    """The deployment's most recent completed flow run (exits if there is none)."""
    with httpx.Client(base_url=api, timeout=30) as client:
        dep = client.get(f"/deployments/name/{deployment}")
        dep.raise_for_status()
        runs = client.post(
            "/flow_runs/filter",
            json={
                "deployments": {"id": {"any_": [dep.json()["id"]]}},
                "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}},
                "sort": "END_TIME_DESC",
                "limit": 1,
            },
        )
        runs.raise_for_status()
    found = runs.json()
    if not found:
        raise SystemExit(
            f"no completed run of {deployment} yet: run it first (prefect deployment run {deployment})"
        )
    return found[0]


def growth_artifact(api: str, flow_run_id: str, key: str = "dataset-growth") -> dict | None:
    """The run's growth report artifact, if it posted one."""
    found = httpx.post(
        f"{api}/artifacts/filter",
        timeout=30,
        json={
            "artifacts": {"key": {"any_": [key]}, "flow_run_id": {"any_": [flow_run_id]}},
            "sort": "CREATED_DESC",
            "limit": 1,
        },
    )
    found.raise_for_status()
    return found.json()[0] if found.json() else None


def screenshot(
    url: str,
    out: Path,
    *,
    width: int = 1600,
    height: int = 1200,
    wait_ms: int = 20000,
    chromium: str = "chromium",
) -> None:
    """Render ``url`` and save a PNG; the virtual-time budget lets the single-page app load its data."""
    binary = shutil.which(chromium)
    if binary is None:
        raise SystemExit(f"{chromium} not found: apt-get install -y chromium")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reasonmed-chromium-") as profile:
        cmd = [
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--virtual-time-budget={wait_ms}",
            f"--screenshot={out}",
            url,
        ]
        subprocess.run(cmd, check=True, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not out.is_file():
        raise SystemExit(f"chromium wrote no screenshot to {out}")


def stack(images: list[Path], out: Path) -> None:
    """Put the screenshots one above the other in one PNG."""
    from PIL import Image  # Pillow comes with matplotlib

    parts = [Image.open(p).convert("RGB") for p in images]
    sheet = Image.new("RGB", (max(p.width for p in parts), sum(p.height for p in parts)), (24, 24, 27))
    y = 0
    for part in parts:
        sheet.paste(part, (0, y))
        y += part.height
    sheet.save(out, optimize=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ui", default="http://127.0.0.1:4200", help="the Prefect UI (its API is UI/api)")
    parser.add_argument("--deployment", default="nightly-growth/nightly")
    parser.add_argument("--flow-run", help="this flow run instead of the deployment's latest completed one")
    parser.add_argument("--out", type=Path, default=Path("docs/img/prefect-nightly.png"))
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument(
        "--deployment-height", type=int, default=760, help="pixels of the deployment page to keep"
    )
    parser.add_argument("--run-height", type=int, default=820, help="pixels of the run page to keep")
    parser.add_argument("--report-height", type=int, default=1950, help="pixels of the report page to keep")
    args = parser.parse_args(argv)
    ui, api = args.ui.rstrip("/"), args.ui.rstrip("/") + "/api"
    run_id = args.flow_run or latest_completed_run(api, args.deployment)["id"]
    with tempfile.TemporaryDirectory(prefix="reasonmed-shots-") as tmp:
        shots = [Path(tmp) / "deployment.png", Path(tmp) / "run.png"]
        screenshot(
            f"{ui}/deployments/deployment/{deployment_id(api, args.deployment)}",
            shots[0],
            width=args.width,
            height=args.deployment_height,
        )
        screenshot(f"{ui}/runs/flow-run/{run_id}", shots[1], width=args.width, height=args.run_height)
        artifact = growth_artifact(api, run_id)
        if artifact is not None:
            shots.append(Path(tmp) / "report.png")
            screenshot(
                f"{ui}/artifacts/artifact/{artifact['id']}",
                shots[-1],
                width=args.width,
                height=args.report_height,
            )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        stack(shots, args.out)
    print(
        f"{args.out}: flow run {run_id}" + ("" if artifact else " (it posted no dataset-growth artifact)"),
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
