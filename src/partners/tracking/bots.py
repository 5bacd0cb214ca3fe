"""Is a user agent a bot? ua-parser's maintained crawler rules, plus the HTTP libraries they leave out.

ua-parser marks crawlers (Googlebot, bingbot, link unfurlers...) as the device family "Spider". Scripts
(curl, wget, python-requests, Go's client, headless browsers) are not crawlers to it, but their clicks are
not people either. A browser always sends a user agent, so an empty one is a bot too.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ua_parser import parse_device

SPIDER = "Spider"
_SCRIPTED_CLIENTS = re.compile(
    r"curl|wget|python|httpx|aiohttp|go-http-client|java/|okhttp|libwww|perl|ruby|php|node-fetch|axios"
    r"|headlesschrome|phantomjs|puppeteer|playwright|scrapy|httpclient|postman|insomnia",
    re.IGNORECASE,
)


@lru_cache(maxsize=8192)
def is_bot(user_agent: str) -> bool:
    if not user_agent.strip():
        return True
    if _SCRIPTED_CLIENTS.search(user_agent):
        return True
    device = parse_device(user_agent)
    return device is not None and device.family == SPIDER


def warm_up() -> None:
    """ua-parser compiles its rules on first use (~0.1 s): do it before the first click, not during it."""
    parse_device("Mozilla/5.0")
