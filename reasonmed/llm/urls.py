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


def secrets_of(basic: aiohttp.BasicAuth | None, api_key: str | None) -> tuple[str, ...]:
    """What no message may hold, whatever a server echoes: the API key, the URL's password and the Basic
    credential made of it (``reasonmed.redact.redact(text, known=...)``)."""
    found = [api_key or ""]
    if basic is not None:
        found += [basic.password, basic.encode().partition(" ")[2]]
    return tuple(s for s in found if s)
