"""The serve batch endpoint (``POST /v1/dynscaling/batch``) caches no failed item: items the upstream failed come
back with the upstream's own error, and resubmitting the same batch once the upstream is up answers them, while
what was already paid for is reused."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dynscaling import load_pool
from dynscaling.replay_server import ReplayServer
from run_safety_helpers import DATE_POOL, ModelsServer, free_port

uvicorn = pytest.importorskip("uvicorn")

from dynscaling.server import ServeConfig, create_app  # noqa: E402


def post(url: str, text: str) -> tuple[int, str]:
    request = urllib.request.Request(url, data=text.encode(), headers={"content-type": "application/json"},
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_a_failed_batch_item_is_retried_on_resubmission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pool = load_pool(DATE_POOL)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    port = free_port()
    upstream_url = f"http://127.0.0.1:{port}/v1"
    config = ServeConfig(upstream_url=upstream_url, upstream_model=pool.name, concurrency=4, answer_type="date",
                         journal_path=tmp_path / "journal.sqlite", strategy="sc",
                         sampling={"temperature": 0.7, "max_retries": 0})
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/v1/dynscaling/batch"
    lines = "\n".join(json.dumps({"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions",
                                  "body": {"model": f"dynscaling/2/{pool.name}",
                                           "messages": [{"role": "user", "content": pool.entries[i].question.text}]}})
                      for i in range(6))
    try:
        with ModelsServer(models=(pool.name,), post_status=503, post_message="overloaded, try later", port=port):
            status, text = post(url, lines)
        assert status == 200, text
        failed = [json.loads(line) for line in text.splitlines()]
        assert all(item["response"]["status_code"] >= 500 for item in failed)
        assert all("HTTP 503: overloaded, try later" in item["response"]["body"]["error"]["message"]
                   for item in failed)

        with ReplayServer(pool, port=port) as upstream:
            status, text = post(url, lines)
            served = upstream.stats.snapshot()["samples"]
            again_status, again = post(url, lines)
            served_again = upstream.stats.snapshot()["samples"]
        assert status == 200 and again_status == 200
        answered = [json.loads(line) for line in text.splitlines()]
        assert all(item["response"]["status_code"] == 200 for item in answered)
        assert served == 12 and served_again == served  # answered once, then reused
        assert [json.loads(line)["response"]["body"]["dynscaling"]["answer"] for line in again.splitlines()] == \
            [item["response"]["body"]["dynscaling"]["answer"] for item in answered]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
