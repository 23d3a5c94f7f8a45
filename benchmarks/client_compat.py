"""Third-party clients driving ``dynscaling serve`` in front of ``dynscaling replay-server``: LiteLLM (sync,
async, streaming, text completions, ``max_tokens``, ``n``, the ``dynscaling`` field) and Simon Willison's ``llm``
CLI (streaming and not, ``-o max_tokens``). Each check prints one line, ``PASS`` or ``FAIL`` with what it saw;
the table goes to ``benchmarks/results/client_compat.md``.

LiteLLM and ``llm`` take minutes to install, so they are not in the test extra: run this in a venv that has them
and dynscaling, e.g.::

    python -m venv /work/venvs/compat && /work/venvs/compat/bin/pip install litellm llm -e '.[server]'
    nice -n 10 /work/venvs/compat/bin/python benchmarks/client_compat.py
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from servekit import ROOT, SHARED, dynscaling_serve, replay_server

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network: use the bundled price map

POOL = SHARED / "data" / "pools" / "gpt4_gsm8k_x12.jsonl.gz"
MODEL = "gpt4_gsm8k_x12"
QUESTIONS = [json.loads(line)["question"] for line in
             (SHARED / "data" / "benchmarks" / "gsm8k" / "test.jsonl").read_text().splitlines()[:12]]


def litellm_checks(url: str) -> list[tuple[str, Callable[[], str]]]:
    import litellm

    scaled = f"openai/dynscaling/4/{MODEL}"

    def ask(i: int) -> list[dict[str, str]]:
        return [{"role": "user", "content": QUESTIONS[i]}]

    def plain() -> str:
        r = litellm.completion(model=scaled, api_base=url, api_key="unused", messages=ask(0))
        extra = getattr(r, "dynscaling", None)
        if extra is None and getattr(r, "model_extra", None):
            extra = r.model_extra.get("dynscaling")
        assert "The answer is" in r.choices[0].message.content, r.choices[0].message.content
        assert extra and extra["samples"] >= 1, f"dynscaling field lost: {r}"
        return f"answer {extra['answer']}, {extra['samples']} samples, {r.usage.completion_tokens} completion tokens"

    def streamed() -> str:
        chunks = list(litellm.completion(model=scaled, api_base=url, api_key="unused", messages=ask(1),
                                         stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert "The answer is" in text, text
        return f"{len(chunks)} chunks, ends {text[-24:]!r}"

    def asynchronous() -> str:
        async def both() -> list[Any]:
            return await asyncio.gather(*(litellm.acompletion(model=scaled, api_base=url, api_key="unused",
                                                              messages=ask(i)) for i in (2, 3)))

        replies = asyncio.run(both())
        assert all("The answer is" in r.choices[0].message.content for r in replies)
        return "2 concurrent acompletion calls answered"

    def max_tokens() -> str:
        r = litellm.completion(model=scaled, api_base=url, api_key="unused", messages=ask(4), max_tokens=10)
        content = r.choices[0].message.content or ""
        assert r.choices[0].finish_reason == "length" and len(content) <= 40, (r.choices[0].finish_reason, content)
        return f"finish_reason length, {len(content)} characters"

    def n_choices() -> str:
        r = litellm.completion(model=f"openai/dynscaling/6/{MODEL}", api_base=url, api_key="unused",
                               messages=ask(5), n=3)
        assert len(r.choices) == 3, len(r.choices)
        return "3 choices"

    def text_completion() -> str:
        r = litellm.text_completion(model=f"text-completion-openai/dynscaling/3/{MODEL}", api_base=url,
                                    api_key="unused", prompt=QUESTIONS[6])
        text = r.choices[0].text
        assert "The answer is" in text, text
        return f"text ends {text[-20:]!r}"

    def passthrough() -> str:
        r = litellm.completion(model=f"openai/{MODEL}", api_base=url, api_key="unused", messages=ask(7))
        assert "The answer is" in r.choices[0].message.content
        return "plain model name passed through"

    return [("litellm completion (scaled, dynscaling field kept)", plain), ("litellm streaming", streamed),
            ("litellm acompletion x2", asynchronous), ("litellm max_tokens=10", max_tokens),
            ("litellm n=3", n_choices), ("litellm text_completion (scaled /v1/completions)", text_completion),
            ("litellm pass-through", passthrough)]


def llm_checks(url: str, user_dir: Path) -> list[tuple[str, Callable[[], str]]]:
    executable = shutil.which("llm") or str(Path(sys.executable).with_name("llm"))
    (user_dir / "extra-openai-models.yaml").write_text(
        f"- model_id: ds4\n  model_name: dynscaling/4/{MODEL}\n  api_base: {url}\n"
        f"- model_id: plain\n  model_name: {MODEL}\n  api_base: {url}\n", encoding="utf-8")
    env = {**os.environ, "LLM_USER_PATH": str(user_dir), "OPENAI_API_KEY": "unused"}

    def run(*args: str) -> str:
        done = subprocess.run([executable, *args], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-500:]
        return done.stdout

    def streamed() -> str:
        out = run("-m", "ds4", QUESTIONS[8])
        assert "The answer is" in out, out
        return f"ends {out.strip()[-20:]!r}"

    def not_streamed() -> str:
        out = run("-m", "ds4", "--no-stream", QUESTIONS[9])
        assert "The answer is" in out, out
        return f"ends {out.strip()[-20:]!r}"

    def max_tokens() -> str:
        out = run("-m", "ds4", "-o", "max_tokens", "10", QUESTIONS[10])
        assert len(out.strip()) <= 40, out
        return f"{len(out.strip())} characters: {out.strip()!r}"

    def passthrough() -> str:
        out = run("-m", "plain", QUESTIONS[11])
        assert "The answer is" in out, out
        return "plain model name passed through"

    return [("llm CLI streaming (scaled)", streamed), ("llm CLI --no-stream", not_streamed),
            ("llm CLI -o max_tokens 10", max_tokens), ("llm CLI pass-through", passthrough)]


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory() as tmp, replay_server(POOL) as upstream, \
            dynscaling_serve(upstream, MODEL, "--answer-type", "number", "--journal",
                             str(Path(tmp) / "j.sqlite")) as url:
        checks = []
        try:
            checks += litellm_checks(url)
        except ImportError:
            rows.append(("litellm", "SKIP", "not installed"))
        if shutil.which("llm") or Path(sys.executable).with_name("llm").exists():
            checks += llm_checks(url, Path(tmp))
        else:
            rows.append(("llm CLI", "SKIP", "not installed"))
        for name, check in checks:
            started = time.perf_counter()
            try:
                detail = check()
                verdict = "PASS"
            except Exception as error:  # a compatibility report: every failure is a finding, not a crash
                verdict, detail = "FAIL", f"{type(error).__name__}: {str(error)[:300]}"
            rows.append((name, verdict, f"{detail} ({time.perf_counter() - started:.1f} s)"))
            print(f"{verdict} {name}: {detail}", flush=True)
    versions = []
    for package in ("litellm", "llm", "openai"):
        try:
            from importlib.metadata import version

            versions.append(f"{package} {version(package)}")
        except Exception:
            pass
    table = ["| check | result | detail |", "|---|---|---|"] + [f"| {n} | {v} | {d} |" for n, v, d in rows]
    (ROOT / "benchmarks" / "results" / "client_compat.md").write_text(
        f"Clients: {', '.join(versions)}\n\n" + "\n".join(table) + "\n", encoding="utf-8")
    return 0 if all(v != "FAIL" for _, v, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
