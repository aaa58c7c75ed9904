"""Hide credentials in anything shown, logged or stored. The one place for the rule: every message, log
line, stored config, error row and Prefect parameter goes through ``redact`` (free text, one URL) or
``redact_data`` (a JSON-like value), so a credential hidden in one of them is hidden in all.

What counts as a credential: a URL's password (and a lone userinfo on a non-database URL, which by
convention is a token: ``https://TOKEN@host``), the values of query keys, headers and config keys whose
name says secret (``secret_key``), a URL's fragment, an Authorization header of any scheme and the
credential after a scheme word (``Basic ...``, ``Bearer ...``), JWTs, and any value the caller knows to be
secret (an API key, a URL password and its Basic form). URLs are taken apart by parsers, never by hand:
SQLAlchemy's ``make_url`` for database URLs (it renders SQLite paths exactly), ``urllib.parse`` otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import sqlalchemy.dialects
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from reasonmed.env_refs import is_reference

MASK = "***"

# --------------------------------------------------------------------------- names

# Keys that hold the *name* of a credential (an env var, a Prefect Secret block), not its value.
_NAME_KEYS = frozenset({"api_key_env", "api_key_secret"})
# A name is secret when one of its words is one of these, or ends in "key" (api_key, apiKey, x-api-key).
_SECRET_WORDS = frozenset(
    {
        "token",
        "sig",
        "signature",
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "credential",
        "credentials",
        "auth",
        "authorization",
        "cookie",
        "jwt",
    }
)
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def secret_key(name: str) -> bool:
    """Whether a config key, query key or header called ``name`` holds a credential (case and separators
    do not matter: ``hf_token``, ``X-Api-Key``, ``apiKey``, ``PASSWORD``, ``sig``); ``max_tokens`` does not."""
    if name.lower() in _NAME_KEYS:
        return False
    return any(
        w in _SECRET_WORDS or w.endswith(("key", "password", "passwd", "secret", "token"))  # PGPASSWORD
        for w in map(str.lower, _WORDS.findall(name))
    )


# --------------------------------------------------------------------------- URLs

# SQLAlchemy's own dialects (and the names their URLs also go by): their URLs are rendered by make_url.
_DATABASE_SCHEMES = frozenset(sqlalchemy.dialects.__all__) | {"postgres", "mariadb"}


def redact_url(url: str) -> str:
    """One URL with its credentials masked: ``scheme://user:***@host/p?api_key=***&a=1#***``. A URL that
    holds none comes back unchanged; one that does not parse is not shown at all."""
    try:
        scheme = urlsplit(url).scheme.lower()
        if scheme.partition("+")[0] in _DATABASE_SCHEMES:
            return _database_url(url)
        return _network_url(url)
    except (ValueError, ArgumentError):
        return MASK


def _masked_query(pairs: Iterable[tuple[str, str]]) -> str | None:
    """The query re-encoded with secret values masked, or None when no key is secret."""
    pairs = list(pairs)
    if not any(secret_key(k) for k, _ in pairs):
        return None
    return urlencode([(k, MASK if secret_key(k) else v) for k, v in pairs], safe="*")


def _database_url(url: str) -> str:
    u = make_url(url)
    pairs = [(k, v) for k, vs in u.query.items() for v in ((vs,) if isinstance(vs, str) else vs)]
    query = _masked_query(pairs)
    if u.password is None and query is None:
        return url
    if query is None:
        return u.render_as_string(hide_password=True)
    return u.set(query={}).render_as_string(hide_password=True) + (f"?{query}" if query else "")


def _network_url(url: str) -> str:
    p = urlsplit(url)
    userinfo = p.username is not None and (p.username != "" or p.password is not None)
    query = _masked_query(parse_qsl(p.query, keep_blank_values=True)) if p.query else None
    if not userinfo and query is None and not p.fragment:
        return url
    netloc = p.netloc
    if userinfo:
        host = p.hostname or ""
        host = f"[{host}]" if ":" in host else host
        host += f":{p.port}" if p.port is not None else ""  # p.port raises ValueError for a bad port
        netloc = f"{p.username}:{MASK}@{host}" if p.password is not None else f"{MASK}@{host}"
    return urlunsplit(
        (p.scheme, netloc, p.path, p.query if query is None else query, MASK if p.fragment else "")
    )


# --------------------------------------------------------------------------- free text

# A scheme starts where no scheme character precedes it: a long word is then tried once, not once per letter.
_URL_IN_TEXT = re.compile(r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
_WHOLE_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S*")
_TRAILING = ".,;:!?)]}"
# ``name: value`` / ``name=value`` / ``"name": "value"`` (JSON, a Python repr, an echoed request); a name
# inside a dotted path (``endpoints.a.api_key: unknown key``) is a key named in a message, not a value.
_PAIR = re.compile(r"""(?<![\w.-])(?P<q>\\?["']?)(?P<name>[A-Za-z][\w-]*)(?P=q)[ \t]*(?P<sep>[:=])[ \t]*""")
_QUOTED = {
    '"': re.compile(r'"((?:[^"\\\r\n]|\\.)*)("?)'),
    "'": re.compile(r"'((?:[^'\\\r\n]|\\.)*)('?)"),
    '\\"': re.compile(r'\\"(.*?)(\\"|$)', re.M),
    "\\'": re.compile(r"\\'(.*?)(\\'|$)", re.M),
}
_UNQUOTED = {":": re.compile(r"[^\r\n]*"), "=": re.compile(r"[^\s&;,\"']*")}
# A credential after an auth scheme word, wherever it stands (at least one non-letter: "Basic idea" stays).
_SCHEME_CREDENTIAL = re.compile(
    r"\b(?P<scheme>Bearer|Basic|Token|Negotiate|NTLM)(?P<sp>\s+)(?=[\w.~+/=-]*[^A-Za-z\s])[\w.~+/-]{6,}=*",
    re.I,
)
_DIGEST = re.compile(r"\b(?P<scheme>Digest)(?P<sp>\s+)(?=[\w-]+=)[^\r\n]*", re.I)
_JWT = re.compile(r"\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*")


def redact(text: str, known: Iterable[str | None] = ()) -> str:
    """``text`` (a message, log line, error body, URL) with every credential in it masked; ``known``:
    values the caller knows are secret (an API key, a password), masked wherever they appear."""
    if not text:
        return text
    for secret in sorted({k for k in known if k and len(k) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    if _WHOLE_URL.fullmatch(text.strip()):
        return redact_url(text.strip())
    text = _URL_IN_TEXT.sub(_url_in_text, text) if "://" in text else text
    text = _mask_pairs(text)
    for pattern in (_SCHEME_CREDENTIAL, _DIGEST):
        text = pattern.sub(lambda m: f"{m['scheme']}{m['sp']}{MASK}", text)
    return _JWT.sub(MASK, text)


def _url_in_text(m: re.Match[str]) -> str:
    url = m.group()
    core = url.rstrip(_TRAILING)
    return redact_url(core) + url[len(core) :]


def _mask_pairs(text: str) -> str:
    """Every ``name: value`` whose name says secret, with the value masked (quoted values keep their quotes)."""
    out: list[str] = []
    pos = 0
    for m in _PAIR.finditer(text):
        if m.start() < pos or not secret_key(m["name"]):
            continue
        start = m.end()
        if text.startswith(MASK, start):  # masked already (a message quoting a masked one): no more to hide
            continue
        quote = next((q for q in ('\\"', "\\'", '"', "'") if text.startswith(q, start)), None)
        if quote is not None:
            v = _QUOTED[quote].match(text, start)
            assert v is not None  # the pattern matches the empty rest too
            out.append(text[pos:start] + quote + MASK + (quote if v.group(2) else ""))
        else:
            v = _UNQUOTED[m["sep"]].match(text, start)
            assert v is not None
            out.append(text[pos:start] + (MASK if v.group() else ""))
        pos = v.end()
    return "".join(out) + text[pos:] if out else text


# --------------------------------------------------------------------------- structures


def redact_data(value: Any, key: str | None = None) -> Any:
    """A copy of ``value`` (JSON-like) with every credential masked: the value of a key that names a
    secret whole, any other string by ``redact``. ``${VAR}`` references, which hold no value, are kept so
    the reader knows where the value comes from."""
    if isinstance(value, dict):
        return {k: redact_data(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(v, key) for v in value]
    if isinstance(value, str):
        if is_reference(value):
            return value
        if key is not None and secret_key(key) and value:
            return MASK
        return redact(value)
    return value
