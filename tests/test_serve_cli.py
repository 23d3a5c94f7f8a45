"""``dynscaling serve`` and ``dynscaling replay-server`` refuse to start with one line and exit status 2 when they
cannot work: a busy port, an upstream that is not there or refuses the key."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from dynscaling.cli import cli  # noqa: E402
from dynscaling.pools import bundled_pools  # noqa: E402
from serving import ChatUpstream  # noqa: E402


@pytest.fixture()
def busy_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def one_line_error(result) -> str:  # noqa: ANN001
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


class TestServeRefusesToStart:
    def test_an_unreachable_upstream_is_one_line_and_exit_2(self) -> None:
        url = f"http://127.0.0.1:{closed_port()}/v1"
        result = CliRunner().invoke(cli, ["serve", "--upstream-url", url, "--upstream-model", "m", "--port", "0"])
        line = one_line_error(result)
        assert url in line and "cannot reach the upstream" in line

    def test_an_upstream_refusing_the_key_is_one_line_and_exit_2(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-live-SECRET-abcdef123456")
        with ChatUpstream(status=401, error="Incorrect API key", echo_auth=True) as up:
            result = CliRunner().invoke(cli, ["serve", "--upstream-url", up.base_url, "--upstream-model", "m",
                                              "--port", "0"])
        line = one_line_error(result)
        assert "refused the key in OPENAI_API_KEY" in line and "Incorrect API key" in line
        assert "SECRET" not in result.output

    def test_a_busy_port_is_one_line_and_exit_2(self, busy_port: int) -> None:
        with ChatUpstream() as up:
            result = CliRunner().invoke(cli, ["serve", "--upstream-url", up.base_url, "--upstream-model",
                                              "fake-model", "--port", str(busy_port)])
        line = one_line_error(result)
        assert f"127.0.0.1:{busy_port}" in line and "--port" in line


class TestReplayServerRefusesToStart:
    def test_a_busy_port_is_one_line_and_exit_2(self, busy_port: int) -> None:
        pool = next(p for p in bundled_pools() if p.name.startswith("chatgpt_date"))
        result = CliRunner().invoke(cli, ["replay-server", "--pool", str(pool), "--port", str(busy_port)])
        line = one_line_error(result)
        assert f"127.0.0.1:{busy_port}" in line
