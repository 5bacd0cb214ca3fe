"""Pure pieces of tracking: the redirect URL, the link cache, the bot check (no database)."""

from __future__ import annotations

import pytest

from partners.tracking import service
from partners.tracking.bots import is_bot
from partners.tracking.service import LinkCache, RedirectTarget, ResolvedLink, redirect_target

UTM = {"utm_source": "blog", "utm_medium": None, "utm_campaign": "", "utm_term": None, "utm_content": None}


def test_redirect_target_keeps_the_destinations_params_and_replaces_the_links_own() -> None:
    target = redirect_target("https://namaskah.app/p?utm_source=old&x=1&x=2&click_id=stale#frag", UTM, "ref42")
    assert target.location("c" * 32) == (
        f"https://namaskah.app/p?x=1&x=2&utm_source=blog&ref=ref42&click_id={'c' * 32}#frag"
    )
    assert target.preview() == "https://namaskah.app/p?x=1&x=2&utm_source=blog&ref=ref42#frag"


def test_redirect_target_without_a_query_or_path() -> None:
    target = redirect_target("https://namaskah.app", {}, "r1")
    assert target.location("abc") == "https://namaskah.app?ref=r1&click_id=abc"


def resolved(link_id: int) -> ResolvedLink:
    return ResolvedLink(link_id, 1, RedirectTarget("https://namaskah.app/?ref=r", ""), 86_400)


def test_the_link_cache_forgets_entries_after_their_ttl() -> None:
    clock = [1000.0]
    cache = LinkCache(ttl=30, miss_ttl=5, clock=lambda: clock[0])
    cache.put("known", resolved(1))
    cache.put("unknown", None)
    assert cache.get("known") == resolved(1)
    assert cache.get("unknown") is None
    clock[0] += 6
    assert cache.get("unknown") is service.MISS
    assert cache.get("known") == resolved(1)
    clock[0] += 25
    assert cache.get("known") is service.MISS


def test_the_link_cache_evicts_the_least_recently_used() -> None:
    cache = LinkCache(maxsize=2)
    cache.put("a", resolved(1))
    cache.put("b", resolved(2))
    assert cache.get("a") == resolved(1)
    cache.put("c", resolved(3))
    assert cache.get("b") is service.MISS
    assert cache.get("a") == resolved(1)
    cache.discard("a")
    assert cache.get("a") is service.MISS


@pytest.mark.parametrize(
    ("user_agent", "bot"),
    [
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148", False),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36", False),
        ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", True),
        ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", True),
        ("python-requests/2.32.0", True),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/126.0 Safari/537.36", True),
        ("", True),
    ],
)
def test_bots(user_agent: str, bot: bool) -> None:
    assert is_bot(user_agent) is bot
