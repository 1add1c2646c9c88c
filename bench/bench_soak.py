"""Soak: start the hub as a server (``python app.py``), send N requests, each from a new session, cycling over the
ten tabs, and print the server's resident memory and the disk its runs and Gradio's cache use every K requests.

    python bench/bench_soak.py [--requests 300] [--every 50] [--backbone tiny] [--max-sessions 64]
                               [--keep-runs 50] [--keep-seconds 60] [--steps 2]

Each request is a fresh ``gradio_client.Client`` (a new session, as every page visit or API call is), running the
first method of its tab. What should stay flat after warm-up: RSS once ``--max-sessions`` sessions exist (Gradio
keeps that many session states), the run folders once ``--keep-runs`` exist, Gradio's cache once its files age
past ``--keep-seconds`` (swept every quarter of that).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402
from gradio_client import Client  # noqa: E402

from demos.api_examples import REQUESTS  # noqa: E402
from methods.core.registry import list_methods  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def folder_bytes(folder: Path) -> tuple[int, int]:
    files = [f for f in folder.rglob("*") if f.is_file()] if folder.exists() else []
    return len(files), sum(f.stat().st_size for f in files)


def wait_for(url: str, server: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}")
        try:
            Client(url, verbose=False)
            return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(1)
    raise SystemExit("the server did not start in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--max-sessions", type=int, default=64)
    parser.add_argument("--keep-runs", type=int, default=50)
    parser.add_argument("--keep-seconds", type=float, default=60)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hub-soak-"))
    runs, cache = work / "runs", work / "gradio"
    port = free_port()
    env = {**os.environ, "GRADIO_TEMP_DIR": str(cache), "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    command = [
        sys.executable, "app.py", "--backbone", args.backbone, "--port", str(port), "--output-dir", str(runs),
        "--max-sessions", str(args.max_sessions), "--keep-runs", str(args.keep_runs),
        "--keep-seconds", str(args.keep_seconds),
    ]  # fmt: skip
    log = open(work / "server.log", "w")  # noqa: SIM115 - closed at the end
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for(url, server)
        process = psutil.Process(server.pid)
        print(f"server pid {server.pid}, {args.backbone} backbone, sessions kept {args.max_sessions}, "
              f"runs kept {args.keep_runs}, cache age {args.keep_seconds:g} s")  # fmt: skip
        print(f"{'requests':>8} {'seconds':>8} {'RSS MiB':>8} {'run folders':>11} {'runs MB':>8} "
              f"{'cache files':>11} {'cache MB':>8} {'failed':>6}")  # fmt: skip
        tabs = list(REQUESTS)
        started, failed = time.perf_counter(), 0

        def report(done: int) -> None:
            run_files, run_bytes = folder_bytes(runs)
            cache_files, cache_bytes = folder_bytes(cache)
            folders = len([p for p in runs.iterdir() if p.is_dir()]) if runs.exists() else 0
            print(f"{done:>8} {time.perf_counter() - started:>8.0f} {process.memory_info().rss / 2**20:>8.0f} "
                  f"{folders:>11} {run_bytes / 1e6:>8.1f} {cache_files:>11} {cache_bytes / 1e6:>8.1f} {failed:>6}",
                  flush=True)  # fmt: skip

        report(0)
        for index in range(args.requests):
            tab = tabs[index % len(tabs)]
            first = list_methods(tab)[0].name
            try:
                result = Client(url, verbose=False).predict(
                    **REQUESTS[tab], methods=[first], steps=args.steps, seed=index, api_name=f"/{tab}"
                )
                failed += result[1]["data"][0][1] != "ok"
            except Exception as error:  # noqa: BLE001 - count it, keep soaking
                failed += 1
                print(f"request {index} (/{tab}) failed: {error}", file=sys.stderr)
            if (index + 1) % args.every == 0:
                report(index + 1)
    finally:
        server.terminate()
        server.wait(30)
        log.close()


if __name__ == "__main__":
    main()
