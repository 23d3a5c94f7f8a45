"""Time to first byte and to the last, through ``dynscaling serve`` in front of a replay-server whose every
request takes ``--latency`` seconds (default 1.5): pass-through streaming, scaled streaming (SSE keep-alive
comments while sampling) and scaled without streaming. Median of ``--repeats`` requests each, to
``benchmarks/results/serve_first_byte.json``.

Run: ``nice -n 10 python benchmarks/serve_first_byte.py``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from servekit import ROOT, SHARED, dynscaling_serve, replay_server

POOL = SHARED / "data" / "pools" / "gpt4_gsm8k_x12.jsonl.gz"
MODEL = "gpt4_gsm8k_x12"


def timed(url: str, body: dict) -> tuple[float, float, str]:
    """(seconds to the first body byte, seconds to the end, the first line)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    started = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body=json.dumps(body), headers={"content-type": "application/json"})
    response = conn.getresponse()
    head = response.fp.read(1)  # the first byte of the body (of the first chunk's size line, when chunked)
    first = time.perf_counter() - started
    if response.getheader("transfer-encoding") == "chunked":  # SSE: read to the [DONE] event
        lines = [head + response.fp.readline()]
        while lines[-1] and lines[-1].strip() != b"data: [DONE]":
            lines.append(response.fp.readline())
        first_line = next(x for x in lines[1:] if x.strip())
    else:  # JSON: the rest of Content-Length
        first_line = head + response.fp.read(int(response.getheader("content-length") or 1) - 1)
    total = time.perf_counter() - started
    conn.close()
    return first, total, first_line.decode(errors="replace").strip()[:40]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=1.5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=int, default=4)
    args = parser.parse_args()
    questions = [json.loads(line)["question"] for line in
                 (SHARED / "data" / "benchmarks" / "gsm8k" / "test.jsonl").read_text().splitlines()[:30]]
    cases = {"pass-through stream": (MODEL, True), f"scaled stream (dynscaling/{args.budget})":
             (f"dynscaling/{args.budget}/{MODEL}", True),
             f"scaled, no stream (dynscaling/{args.budget})": (f"dynscaling/{args.budget}/{MODEL}", False)}
    out: dict[str, dict[str, object]] = {}
    position = 0
    with tempfile.TemporaryDirectory() as tmp, replay_server(POOL, "--latency", str(args.latency)) as upstream, \
            dynscaling_serve(upstream, MODEL, "--answer-type", "number", "--journal",
                             str(Path(tmp) / "j.sqlite")) as url:
        for name, (model, stream) in cases.items():
            runs = []
            for _ in range(args.repeats):
                body = {"model": model, "stream": stream,
                        "messages": [{"role": "user", "content": questions[position]}]}
                position += 1
                runs.append(timed(url, body))
            out[name] = {"first_byte_s": round(statistics.median(r[0] for r in runs), 3),
                         "total_s": round(statistics.median(r[1] for r in runs), 3), "first_line": runs[0][2]}
            print(f"{name}: first byte {out[name]['first_byte_s']} s, total {out[name]['total_s']} s "
                  f"({out[name]['first_line']!r})", flush=True)
    result = {"upstream_latency_s": args.latency, "repeats": args.repeats, "cases": out}
    (ROOT / "benchmarks" / "results" / "serve_first_byte.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
