"""Secrets out of logs: URLs as they may be logged."""

from __future__ import annotations

__all__ = ["safe_url"]


def safe_url(url: str) -> str:
    """A URL fit for logs: no user info, query or fragment, and path segments that may be tokens hidden.

    >>> safe_url("https://bob:pw@hooks.example.com/services/T0AB12/B0CD34/xyzSECRETtoken?token=abc#x")
    'https://hooks.example.com/services/***/***/***'
    >>> safe_url("http://alertmanager:9093/api/v2/alerts")
    'http://alertmanager:9093/api/v2/alerts'
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***"
    rest = rest.split("#", 1)[0].split("?", 1)[0]
    slash = rest.find("/", rest.rfind("@") + 1)
    authority, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    host = authority[authority.rfind("@") + 1:]
    segments = [seg if len(seg) <= 12 and not (len(seg) >= 6 and any(c.isdigit() for c in seg)) else "***"
                for seg in path.split("/")]
    return f"{scheme}://{host}{'/'.join(segments)}"
