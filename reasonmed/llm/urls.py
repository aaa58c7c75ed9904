"""An endpoint URL split into the address requests go to and the credentials its userinfo carried, so
the address can be shown and logged while the credentials travel only in an Authorization header."""

from __future__ import annotations

import aiohttp
import yarl


def split_credentials(url: str) -> tuple[str, aiohttp.BasicAuth | None]:
    """``http://u:p@h/v1`` -> (``http://h/v1``, BasicAuth(u, p)); a URL without userinfo -> (url, None)."""
    parsed = yarl.URL(url)
    if parsed.user is None:
        return url, None
    return str(parsed.with_user(None)), aiohttp.BasicAuth(parsed.user, parsed.password or "")
