"""Open and click tracking, and UTM parameters, added to each recipient's finished email.

`Tracker.track` rewrites every `href="http(s)://..."` of the HTML part and every http(s) URL
of the text part (both in lower case), and adds a 1×1 open pixel before `</body>`:

- UTM parameters (`utm_source`, `utm_medium`, `utm_campaign`) go on links to the shop's own
  site: the host of `[shop] base_url` and its subdomains (product URLs live there too). A
  parameter the link already has is kept as it is.
- With a delivery, each link becomes `BASE/click/TOKEN?url=URL`: the token signs the delivery
  and that exact URL, so the redirect leads nowhere else. Without one (a dry run, a test send)
  links keep their URL (with UTM parameters) and there is no pixel.
- The engine's own links (unsubscribe, view online, survey, preferences) and `mailto:` links
  are never rewritten.
"""

from __future__ import annotations

import re
from html import escape, unescape
from urllib.parse import quote, urlencode, urlsplit

from engine.settings import Tracking
from engine.tokens import Signer

OWN_PATHS = ("unsubscribe/", "view/", "survey/", "preferences/", "open/", "click/")
# `href` as a whole attribute name, found by its literal text first (a leading \b or
# IGNORECASE makes the scan about 20 times slower); written in lower case, as MJML writes it.
_HREF = re.compile(r"""(href(?<![\w-]href)\s*=\s*)(["'])(https?://[^"'<>]+)\2""")
# A URL in plain text; a final full stop, comma... belongs to the sentence, not the URL.
_TEXT_URL = re.compile(r"""https?://[^\s<>()"'\[\]]*[^\s<>()"'\[\].,;:!?]""")
_CACHE_LIMIT = 10_000
# quote(url, safe=":/") for ASCII text, as one str.translate
_QUOTE = {code: f"%{code:02X}" for code in range(128)
          if not (chr(code).isalnum() or chr(code) in "_.-~:/")}


def _quoted(url: str) -> str:
    """`url` percent-encoded for a query value (what quote(url, safe=":/") gives)."""
    return url.translate(_QUOTE) if url.isascii() else quote(url, safe=":/")


def _host(url: str) -> str:
    """The lower-case host of an http(s) URL, without user or port ("" when unreadable)."""
    authority = url.partition("://")[2]
    for end in "/?#":
        authority = authority.partition(end)[0]
    host = authority.rpartition("@")[2]
    if host.startswith("["):
        try:
            return (urlsplit(url).hostname or "").lower()
        except ValueError:  # not a URL that a mail client would open either
            return ""
    return host.partition(":")[0].lower()


class Tracker:
    """Rewrites the emails of one campaign for tracking, as `[tracking]` in campaign.toml says."""

    def __init__(self, settings: Tracking, base_url: str, signer: Signer, campaign: str) -> None:
        self.settings = settings
        self.base = base_url.rstrip("/")
        self.own = tuple(f"{self.base}/{path}" for path in OWN_PATHS)
        self.host = (urlsplit(self.base).hostname or "").lower()
        self.signer = signer
        self.utm = {"utm_source": settings.utm_source, "utm_medium": settings.utm_medium,
                    "utm_campaign": campaign}
        # link as written -> where it leads (with UTM), and that quoted for a query
        self._targets: dict[str, tuple[str, str]] = {}

    def track(self, html: str, text: str, delivery_id: int | None) -> tuple[str, str]:
        """The HTML and text parts as they go to the recipient of delivery `delivery_id`."""
        clicks = self.settings.clicks and delivery_id is not None
        if not (clicks or self.settings.utm):
            return self._with_pixel(html, delivery_id), text

        def link(url: str) -> str:
            if url.startswith(self.own):
                return url
            target, quoted = self._target(url)
            if not clicks:
                return target
            token = self.signer.tracking_token("click", delivery_id, target)
            return f"{self.base}/click/{token}?url={quoted}"

        def href(found: re.Match) -> str:
            url = unescape(found[3])
            return f"{found[1]}{found[2]}{escape(link(url))}{found[2]}"

        html = _HREF.sub(href, html)
        text = _TEXT_URL.sub(lambda found: link(found[0]), text)
        return self._with_pixel(html, delivery_id), text

    def _target(self, url: str) -> tuple[str, str]:
        """`url` with the campaign's UTM parameters when it leads to the shop's site, and
        that quoted for the click redirect's query (remembered: a campaign has few links)."""
        found = self._targets.get(url)
        if found is None:
            if len(self._targets) >= _CACHE_LIMIT:
                self._targets.clear()
            target = self._with_utm(url) if self.settings.utm else url
            found = self._targets[url] = (target, _quoted(target))
        return found

    def _with_utm(self, url: str) -> str:
        host = _host(url)
        if not self.host or not (host == self.host or host.endswith(f".{self.host}")):
            return url
        url, hash_mark, fragment = url.partition("#")
        _, question_mark, query = url.partition("?")
        have = {pair.partition("=")[0] for pair in query.split("&")}
        missing = {key: value for key, value in self.utm.items() if key not in have}
        if missing:
            url += ("&" if query else "" if question_mark else "?") + urlencode(missing)
        return url + hash_mark + fragment

    def _with_pixel(self, html: str, delivery_id: int | None) -> str:
        if delivery_id is None or not self.settings.opens:
            return html
        end = html.rfind("</body>")
        if end < 0:
            return html
        token = self.signer.tracking_token("open", delivery_id)
        pixel = (f'<img src="{self.base}/open/{token}" width="1" height="1" alt="" '
                 'style="display:block;width:1px;height:1px;border:0" />')
        return f"{html[:end]}{pixel}{html[end:]}"
