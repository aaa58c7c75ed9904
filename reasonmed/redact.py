"""Hide credentials in anything shown or stored: URL passwords (userinfo and query string) and the values
of keys that name a secret. One place, used by the config snapshot, ``config show`` and error messages."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Keys whose value is a credential. Keys holding only the *name* of one (api_key_env, api_key_secret) are not.
_SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|api[_-]?key|credential|auth|private[_-]?key|signature", re.I
)
_NAME_KEYS = frozenset({"api_key_env", "api_key_secret"})
_ENV_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}$")


def secret_key(key: str) -> bool:
    return key not in _NAME_KEYS and bool(_SECRET_KEY.search(key))


def mask_url(text: str) -> str:
    """``scheme://user:pw@host/p?password=x&a=1`` -> ``scheme://user:***@host/p?password=***&a=1``; other text as is."""
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return MASK  # not parseable as a URL: it is not shown at all
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, sep, _pw = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if sep else f"{MASK}@{host}" if _looks_like_token(user) else netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(secret_key(k) for k, _ in pairs):
            query = urlencode([(k, MASK if secret_key(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")


def mask_text(text: str) -> str:
    """Free text (an error message, a log line) with every URL in it masked by ``mask_url``."""
    return _URL_IN_TEXT.sub(lambda m: mask_url(m.group()), text) if "://" in text else text


def _looks_like_token(user: str) -> bool:
    """A userinfo without ':' is a token when it is long (``https://ghp_xxx@host``), a user name otherwise."""
    return len(user) >= 20


def mask_secrets(value: Any, key: str | None = None) -> Any:
    """A copy of ``value`` (JSON-like) with every credential replaced by ``***``; ``${VAR}`` references,
    which hold no value, are kept so the reader knows where the value comes from."""
    if isinstance(value, dict):
        return {k: mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_secrets(v, key) for v in value]
    if isinstance(value, str):
        if _ENV_REF.match(value.strip()):
            return value
        if key is not None and secret_key(key) and value:
            return MASK
        return mask_text(value)
    return value
