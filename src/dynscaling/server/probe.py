"""The check ``dynscaling serve`` makes before it listens: is the upstream there, and does it take our key?"""

from __future__ import annotations

import os

import httpx2

from ..errors import ConfigError
from .config import ServeConfig
from .errors import SecretMask

__all__ = ["probe_upstream"]


def probe_upstream(config: ServeConfig, timeout: float = 10.0) -> list[str]:
    """The upstream's model ids (one free ``GET /models``). Raises ``ConfigError`` with one line when it cannot be
    reached or refuses the key; an upstream without a model list answers ``[]``."""
    key = os.environ.get(config.upstream_api_key_env) or "EMPTY"
    url = config.upstream_url.rstrip("/") + "/models"
    try:
        response = httpx2.get(url, headers={"authorization": f"Bearer {key}"}, timeout=timeout)
    except httpx2.HTTPError as error:
        reason = str(error) or type(error).__name__
        raise ConfigError(f"cannot reach the upstream at {config.upstream_url}: {reason} (is it running? check "
                          "--upstream-url)") from None
    if response.status_code in (401, 403):
        detail = SecretMask([key]).text(" ".join(response.text.split()))[:200]
        raise ConfigError(f"the upstream at {config.upstream_url} refused the key in {config.upstream_api_key_env} "
                          f"(HTTP {response.status_code}: {detail})")
    try:
        data = response.json().get("data") if response.status_code == 200 else None
    except (ValueError, AttributeError):
        data = None
    if not isinstance(data, list):
        return []
    return [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
