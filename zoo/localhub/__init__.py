"""A Hugging Face hub over a folder of repos, for offline crawls, tests and air-gapped mirrors.

It is read-only unless served with ``writable=True``: then ``HfApi.create_repo``, ``create_commit`` and
``upload_folder`` work against it with any bearer token (or the one ``write_token`` names); see ``writes.py``.

Layout of the served folder: ``ROOT/<org>/<name>/...`` are model repos, ``ROOT/datasets/<org>/<name>/...``
dataset repos (so ``datasets`` is a reserved org). A README's YAML front matter is the repo's card (and
feeds its tags as on the hub); an optional ``.hub.json`` in a repo gives ``downloads``,
``downloadsAllTime``, ``likes``, ``gated`` (false/"auto"/"manual"), ``private``, ``createdAt``. A repo's
commit sha hashes its paths and file contents, so ``main`` and that sha are its only revisions.

The real ``huggingface_hub`` client talks to it through ``endpoint=url`` or ``HF_ENDPOINT``::

    with serve_in_thread(root, Faults(error_rate=0.1, seed=1)) as url:
        HfApi(endpoint=url).list_models(author="org")
        url.requests.by_kind()  # {"list": 1}; kinds: list, info, tree, file-head, file-get, unknown
        url.hub.faults = Faults()  # faults can change while serving

``serve_in_thread(root, realism=Realism(anonymous=Quota()))`` serves it as strictly as huggingface.co
(redirects to a CDN, 401s, private repos hidden from all but their owner, gates, renames, rate-limit
windows, moving listings: see ``realism.py``).
"""

from zoo.localhub.api import LocalHub, create_app
from zoo.localhub.counters import RequestLog
from zoo.localhub.faults import Faults
from zoo.localhub.realism import Quota, Realism
from zoo.localhub.server import HubURL, run_server, serve_in_thread

__all__ = [
    "Faults", "HubURL", "LocalHub", "Quota", "Realism", "RequestLog", "create_app", "run_server", "serve_in_thread",
]
