"""Crawl benchmark: a local hub with N synthetic adapter repos, crawled twice into a fresh catalog.

Measures, in one run: catalogued repos per second of the first (metadata-only) crawl, HTTP requests
per adapter (listing included), and the time of a re-crawl of the unchanged hub (median of three)
as a ratio of the first. The hub runs in its own process, as a real hub would, so that server and crawler do not
share one interpreter lock; it is warmed up (its content hashes computed) before timing.

    .venv/bin/python bench/crawl.py --repos 10000

``--realistic`` instead crawls a hub as strict as huggingface.co (CDN redirects, rate-limit windows)
once, anonymously, with the anonymous quota scaled down (``--quota-scale``) in shorter windows
(``--window-s``): it measures the 429s, the adapters catalogued, the ETA the progress bar showed
against the time it really took, and what a crawl of the whole hub costs per account tier:

    .venv/bin/python bench/crawl.py --realistic --repos 600 --window-s 60 --quota-scale 0.1
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import re
import socket
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

BASE_ID = "synthetic/base-tiny"
HIDDEN, LAYERS, RANK = 64, 2, 4
PROJECTIONS = ("q_proj", "v_proj")
RECRAWLS = 3  # re-crawls of the unchanged hub; the median is reported (shared machines are noisy)
HUB_WINDOW_S = 300
TIERS = {"anonymous": (500, 3000), "free": (1000, 5000), "PRO": (2500, 12000)}  # (api, resolvers) per window
FULL_HUB_REPOS = 100_000  # about how many LoRA repos the public hub holds
ETA_CHECKPOINTS = (0.25, 0.5, 0.75)  # shares of the repos read at which the ETA is compared with the truth


def safetensors_bytes(tensors: dict[str, np.ndarray]) -> bytes:
    """A safetensors file of float32 arrays (written by hand: fast, and no torch needed)."""
    header, offset, blobs = {}, 0, []
    for name, array in tensors.items():
        blob = np.ascontiguousarray(array, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"".join(blobs)


def write_base(root: Path) -> None:
    repo = root / BASE_ID
    repo.mkdir(parents=True, exist_ok=True)
    weights = {
        f"model.layers.{i}.self_attn.{p}.weight": np.zeros((HIDDEN, HIDDEN)) for i in range(LAYERS) for p in PROJECTIONS
    }
    (repo / "model.safetensors").write_bytes(safetensors_bytes(weights))
    (repo / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": HIDDEN}))
    (repo / "README.md").write_text("---\nlibrary_name: transformers\nlicense: apache-2.0\n---\n# Synthetic base\n")


def write_adapters(root: Path, count: int, seed: int = 0) -> None:
    """``count`` small, valid LoRA adapter repos of the synthetic base, in 100 orgs."""
    rng = np.random.default_rng(seed)
    licenses = ("apache-2.0", "mit", "cc-by-4.0", "llama3")
    for i in range(count):
        repo = root / f"org{i % 100:02d}" / f"lora-{i:05d}"
        repo.mkdir(parents=True, exist_ok=True)
        config = {
            "peft_type": "LORA",
            "r": RANK,
            "lora_alpha": 2 * RANK,
            "target_modules": list(PROJECTIONS),
            "base_model_name_or_path": BASE_ID,
            "task_type": "CAUSAL_LM",
        }
        tensors = {}
        for layer in range(LAYERS):
            for p in PROJECTIONS:
                prefix = f"base_model.model.model.layers.{layer}.self_attn.{p}"
                tensors[f"{prefix}.lora_A.weight"] = rng.standard_normal((RANK, HIDDEN))
                tensors[f"{prefix}.lora_B.weight"] = rng.standard_normal((HIDDEN, RANK))
        (repo / "adapter_config.json").write_text(json.dumps(config))
        (repo / "adapter_model.safetensors").write_bytes(safetensors_bytes(tensors))
        card = (
            f"---\nbase_model: {BASE_ID}\nlibrary_name: peft\nlicense: {licenses[i % len(licenses)]}\n"
            f"datasets:\n- synthetic/task-{i % 50}\n---\n# Adapter {i}\n"
        )
        (repo / "README.md").write_text(card)


def _serve(root: str, port: int, realism: object = None) -> None:
    """The hub process: quiet (no access log), on ``port``."""
    from zoo.localhub import run_server

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    run_server(Path(root), port=port, announce=lambda _: None, realism=realism)


@contextmanager
def served_hub(root: Path, realism: object = None) -> Iterator[str]:
    """The hub of ``root`` in its own process (as a real hub is), up and answering; yields its URL."""
    port = _free_port()
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(str(root), port, realism), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url)
        yield url
    finally:
        server.terminate()
        server.join()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, timeout_s: float = 600) -> None:
    import httpx2

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"{url}/api/models", params={"limit": 1}, timeout=600).status_code == 200:
                return
        except httpx2.TransportError:
            time.sleep(0.2)
    raise TimeoutError("the local hub did not come up")


def realistic_crawl(url: str, catalog: Path, workers: int) -> dict:
    """One anonymous crawl of the realistic hub, timed, with the ETA the progress bar showed along the way."""
    from catalog import Catalog
    from flows.crawl import crawl_hub
    from tasks.progress import step_listener

    etas: list[tuple[float, int, int, float]] = []  # (time, done, total, ETA shown)
    used: dict[str, int] = {}
    started = time.perf_counter()

    def listen(description: str, done: int, total: int) -> None:
        used.update({bucket: int(n) for bucket, n in re.findall(r"(\w+) (\d+) used", description)})
        match = re.search(r"ETA (\d+)m (\d+)s", description)
        if match:
            etas.append((time.perf_counter(), done, total, 60 * int(match[1]) + int(match[2])))

    with step_listener(listen):
        counts = crawl_hub(endpoint=url, catalog_path=str(catalog), max_workers=workers)
    ended = time.perf_counter()
    with Catalog.open(catalog, read_only=True) as cat:
        ok = cat.query("SELECT count(*) AS n FROM adapters WHERE status = 'ok'").column("n")[0].as_py()
    checks = []
    for share in ETA_CHECKPOINTS:
        at, done, total, eta = next(e for e in etas if e[1] >= share * e[2])
        checks.append({"read": f"{done}/{total}", "eta_s": eta, "real_s": round(ended - at, 1),
                       "error": round(eta / (ended - at) - 1, 3)})
    return {"counts": counts, "ok": ok, "seconds": ended - started, "eta_checks": checks, "used": used}


def full_hub_costs(resolvers_per_adapter: float, api_per_adapter: float) -> list[dict]:
    """Requests and hours a first crawl of ``FULL_HUB_REPOS`` costs per tier, the busiest bucket deciding."""
    rows = []
    for tier, (api_quota, resolver_quota) in TIERS.items():
        resolvers, api = FULL_HUB_REPOS * resolvers_per_adapter, FULL_HUB_REPOS * api_per_adapter
        windows = max(math.ceil(resolvers / resolver_quota), math.ceil(api / api_quota))
        rows.append({"tier": tier, "resolver_requests": round(resolvers), "api_requests": round(api),
                     "windows": windows, "hours": round(windows * HUB_WINDOW_S / 3600, 1)})
    return rows


def run_realistic(args: argparse.Namespace, root: Path, work: Path) -> None:
    from flows.crawl import crawl_hub
    from zoo.localhub import Quota, Realism

    os.environ.pop("HF_TOKEN", None)  # anonymous: neither HF_TOKEN nor a saved login
    quota = Quota(api=int(500 * args.quota_scale), resolvers=int(3000 * args.quota_scale))
    realism = Realism(window_s=args.window_s, anonymous=quota)
    with served_hub(root, realism) as url:
        catalog = work / "catalog-realistic.duckdb"
        catalog.unlink(missing_ok=True)
        crawl_hub(endpoint=url, catalog_path=str(catalog), limit=1)  # warm Prefect's API (a few requests)
        catalog.unlink()
        run = realistic_crawl(url, catalog, args.workers)
    counts, repos = run["counts"], run["counts"]["seen"]
    per_adapter = {bucket: n / repos for bucket, n in run["used"].items()}
    report = {
        "adapter_repos": repos,
        "catalogued_ok": run["ok"],
        "quota": {"api": quota.api, "resolvers": quota.resolvers, "window_s": args.window_s},
        "crawl_s": round(run["seconds"], 1),
        "windows_spanned": math.ceil(run["seconds"] / args.window_s),
        "rate_limited_429s": counts["rate_limited"],
        "http_requests": counts["http_requests"],
        "requests_per_adapter": {bucket: round(n, 4) for bucket, n in per_adapter.items()},
        "eta_checks": run["eta_checks"],
        "full_hub_first_crawl": full_hub_costs(per_adapter["resolvers"], per_adapter["api"]),
    }
    print(json.dumps(report, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repos", type=int, default=10_000, help="synthetic adapter repos on the hub")
    parser.add_argument("--workers", type=int, default=8, help="repos read concurrently")
    parser.add_argument("--dir", type=Path, default=None, help="where to build the hub (default: a temp folder)")
    parser.add_argument("--realistic", action="store_true", help="one anonymous crawl of a realistic hub")
    parser.add_argument("--window-s", type=float, default=60.0, help="with --realistic: rate-limit window")
    parser.add_argument("--quota-scale", type=float, default=0.1, help="with --realistic: share of the anonymous quota")
    args = parser.parse_args()

    work = args.dir or Path(tempfile.mkdtemp(prefix="zoo-bench-crawl-"))
    os.environ["HF_TOKEN_PATH"] = str(work / "no-saved-login")  # before huggingface_hub is imported
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    os.environ["ZOO_HOME"] = str(work / "zoo-home")  # Prefect's ephemeral API lives there, away from .zoo
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    from zoo.settings import apply_environment

    apply_environment()
    from catalog import Catalog
    from flows.crawl import crawl_hub

    root = work / "hub"
    started = time.perf_counter()
    if not (root / BASE_ID).exists():
        write_base(root)
        write_adapters(root, args.repos)
    print(f"hub: {args.repos} adapter repos in {root} (built in {time.perf_counter() - started:.1f} s)")
    if args.realistic:
        run_realistic(args, root, work)
        return

    with served_hub(root) as url:
        catalog = work / "catalog.duckdb"
        catalog.unlink(missing_ok=True)
        crawl_hub(endpoint=url, catalog_path=str(catalog), limit=1)  # warm Prefect's API and the code paths
        catalog.unlink()

        t0 = time.perf_counter()
        first = crawl_hub(endpoint=url, catalog_path=str(catalog), max_workers=args.workers)
        t_first = time.perf_counter() - t0
        recrawls = []
        for _ in range(RECRAWLS):
            t0 = time.perf_counter()
            second = crawl_hub(endpoint=url, catalog_path=str(catalog), max_workers=args.workers)
            recrawls.append(time.perf_counter() - t0)
        t_second = statistics.median(recrawls)
        with Catalog.open(catalog, read_only=True) as cat:
            ok = cat.query("SELECT count(*) AS n FROM adapters WHERE status = 'ok'").column("n")[0].as_py()

    adapters = first["seen"]
    report = {
        "adapter_repos": adapters,
        "catalogued_ok": ok,
        "first_crawl_s": round(t_first, 2),
        "repos_per_s": round(adapters / t_first, 1),
        "http_requests_first": first["http_requests"],
        "requests_per_adapter": round(first["http_requests"] / adapters, 3),
        "recrawl_s": round(t_second, 2),  # median of RECRAWLS
        "recrawl_runs_s": [round(t, 2) for t in recrawls],
        "recrawl_fetched": second["new"] + second["updated"],
        "http_requests_recrawl": second["http_requests"],
        "recrawl_ratio": round(t_second / t_first, 3),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
