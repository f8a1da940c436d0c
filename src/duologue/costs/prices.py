"""Prices from pydantic's genai-prices: its bundled data, read in this process, never fetched.

genai-prices can also refresh its data from the network (`UpdatePrices`); duologue never starts it,
so every price comes from the snapshot shipped in the installed wheel, and the package's version names
that data (`price_data_version`, recorded with each run and each priced message).

A model string is priced by its provider's name when genai-prices knows a provider of that name
(openai, anthropic, openrouter, deepseek, …), else by its base URL when that URL is one genai-prices
knows (a plugin's or `openai-compatible` provider pointed at a hosted API). The embedded engine costs
nothing; a self-hosted endpoint (Ollama, vLLM, LM Studio, llama-server, a base URL on this machine or
none) has no price, and says so.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import urlsplit

from ..backends.base import Usage
from ..backends.registry import parse_model_string
from ..errors import UnknownModelError

FREE = "free: embedded model"
SELF_HOSTED = "unknown: self-hosted endpoint"
NO_COUNTS = "unknown: the provider reported no token counts"
LOOPBACK = ("localhost", "127.0.0.1", "::1", "0.0.0.0")


@functools.cache
def price_data_version() -> str:
    """The price data's name and version, e.g. "genai-prices 0.2.3" (without importing it)."""
    try:
        return f"genai-prices {version('genai-prices')}"
    except PackageNotFoundError:
        return "genai-prices (not installed)"


@dataclass(frozen=True)
class ModelPrices:
    """A model's rates in USD per million tokens (None: the price data has no such rate)."""

    input: float
    output: float
    cache_read: float | None
    cache_write: float | None


@dataclass(frozen=True)
class PriceTarget:
    """Where a model's prices are looked up: a genai-prices provider id or an API URL, and the model's name."""

    model_ref: str
    provider_id: str | None = None
    api_url: str | None = None


def _snapshot():
    from genai_prices import data_snapshot

    # The bundled data: nothing in duologue sets a custom snapshot (UpdatePrices would), so this is the
    # wheel's own, the same on every machine with this version.
    return data_snapshot.get_snapshot()


def _is_local(url: str) -> bool:
    host = urlsplit(url).hostname
    return host is None or host in LOOPBACK or host.endswith(".local")


def price_target(model: str, base_url: str | None = None) -> PriceTarget | str:
    """Where `model` (a model string) is priced, or why it has no price ("free: …" or "unknown: …")."""
    try:
        provider, name = parse_model_string(model)
    except UnknownModelError as err:
        return f"unknown: {err}"
    if provider.api == "local":
        return FREE
    snapshot = _snapshot()
    if any(p.id == provider.name for p in snapshot.providers):
        return PriceTarget(name, provider_id=provider.name)
    url = base_url or provider.base_url
    if url is None:
        return f"unknown: provider {provider.name} is not in the price data ({price_data_version()})"
    if _is_local(url):
        return SELF_HOSTED
    if any(re.match(p.api_pattern, url) for p in snapshot.providers):
        return PriceTarget(name, api_url=url)
    return f"unknown: {provider.name} at {url} is not in the price data ({price_data_version()})"


def _lookup(target: PriceTarget):
    snapshot = _snapshot()
    return snapshot.find_provider_model(target.model_ref, None, target.provider_id, target.api_url)


def model_prices(model: str, base_url: str | None = None, when: datetime | None = None) -> ModelPrices | str:
    """A model's rates (per million tokens) at `when` (now), or why it has none ("free: …", "unknown: …")."""
    target = price_target(model, base_url)
    if isinstance(target, str):
        return ModelPrices(0.0, 0.0, 0.0, 0.0) if target == FREE else target
    try:
        _, info = _lookup(target)
    except LookupError:
        return _not_in_data(model)
    prices = info.get_prices(when or datetime.now(UTC))

    def rate(key: str) -> float | None:
        value = getattr(prices, key, None)
        if value is None:
            return None
        return float(value if isinstance(value, Decimal) else value.base)  # tiered: the first tier's rate

    inp, out = rate("input_mtok"), rate("output_mtok")
    if inp is None or out is None:
        return f"unknown: {model} has no token prices in the price data ({price_data_version()})"
    return ModelPrices(inp, out, rate("cache_read_mtok"), rate("cache_write_mtok"))


def _not_in_data(model: str) -> str:
    return f"unknown: {model} is not in the price data ({price_data_version()})"


def price_usage(model: str, usage: Usage, *, base_url: str | None = None, when: datetime | None = None) -> Usage:
    """`usage` with its cost filled in from the price data, unless the provider reported one already
    (OpenRouter's own figure wins): USD and where it comes from, or None and why it is unknown."""
    if usage.cost is not None or usage.cost_source is not None:
        return usage
    target = price_target(model, base_url)
    if isinstance(target, str):
        usage.cost, usage.cost_source = (0.0, FREE) if target == FREE else (None, target)
        return usage
    if usage.prompt_tokens is None or usage.completion_tokens is None:
        usage.cost, usage.cost_source = None, NO_COUNTS
        return usage
    from genai_prices import Usage as PriceUsage

    prompt = usage.prompt_tokens
    read = min(usage.cached_tokens or 0, prompt)
    write = min(usage.cache_write_tokens or 0, prompt - read)
    counts = PriceUsage(
        input_tokens=prompt, cache_read_tokens=read, cache_write_tokens=write, output_tokens=usage.completion_tokens
    )
    try:
        provider, info = _lookup(target)
        calc = info.calc_price(counts, provider, genai_request_timestamp=when)
    except LookupError:
        usage.cost, usage.cost_source = None, _not_in_data(model)
        return usage
    usage.cost, usage.cost_source = float(calc.total_price), price_data_version()
    return usage
