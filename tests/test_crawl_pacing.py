"""A crawl paced to the hub's rate-limit windows: it waits for the reset instead of running into 429s,
and its ETA counts the windows still to wait."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_crawl_reader import FAST_RETRY, build_hub

from zoo.crawl import BaseModelShapes, CrawlQuery, HubHttp, inspect_repo, list_adapter_repos
from zoo.crawl.pacing import BucketUsage, crawl_eta_s
from zoo.localhub import Quota, Realism, serve_in_thread

WINDOW_S = 2.5
QUOTA = 4  # resolver requests per window: two adapters


@pytest.fixture(scope="module")
def hub_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_hub(tmp_path_factory.mktemp("paced-hub"))


def test_eight_threads_wait_for_the_window_instead_of_running_into_429s(hub_root: Path) -> None:
    realism = Realism(window_s=WINDOW_S, anonymous=Quota(api=50, resolvers=QUOTA))
    with serve_in_thread(hub_root, realism=realism) as url:
        http = HubHttp(url, token=False, retry=FAST_RETRY)
        repos = list_adapter_repos(http, CrawlQuery())
        bases = BaseModelShapes(http)
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            facts = [f for adapters in pool.map(lambda r: inspect_repo(http, r, bases), repos) for f in adapters]
        elapsed = time.monotonic() - started
        statuses = url.requests.by_status()
    resolver_requests = sum(1 for f in facts if f.weight_file) * 2
    assert resolver_requests > 2 * QUOTA  # more than two windows' worth: the crawl had to wait
    assert not any(f.status == "failed" for f in facts)
    assert statuses.get(429, 0) <= 1  # the quota is learnt from the first answer, then waited for
    assert elapsed >= WINDOW_S * (resolver_requests // QUOTA - 1)
    resolvers = next(b for b in http.usage() if b.bucket == "resolvers")
    assert (resolvers.quota, resolvers.window_s) == (QUOTA, 3) and resolvers.used >= resolver_requests


def test_the_eta_counts_the_windows_left_to_wait() -> None:
    usage = [BucketUsage("resolvers", used=300, remaining=0, quota=300, window_s=60, reset_in_s=50.0)]
    # 150 repos read in 3 s of reading; 450 left need 900 requests: the reset, two full windows, a last 150 repos
    assert crawl_eta_s(450, 150, 3.0, usage) == pytest.approx(50 + 2 * 60 + 150 * 0.02)
    assert crawl_eta_s(10, 150, 3.0, usage[:0]) == pytest.approx(0.2)  # no quota announced: the pace so far
    assert crawl_eta_s(10, 0, 0.0, usage) is None
