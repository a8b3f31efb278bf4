"""The playground page (GET /api/playground); the agents list it starts from is GET /api/agents (views.py).

The page is one static file, `playground.html`, with its script and style inline: no build step and nothing
loaded from anywhere else. It is sent with a Content-Security-Policy that allows exactly its own inline script
and style (by their SHA-256 hashes) and requests to this origin, so the browser itself enforces that.

Locally (the dev server, `func start`) the page is always served; in Azure only with AGENT_PLAYGROUND_ENABLED
and a chosen auth mode (the handler checks both).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from pathlib import Path

from starlette.responses import Response

PAGE = Path(__file__).with_name("playground.html")
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.S)


@functools.cache
def page() -> tuple[bytes, str]:
    """The page and its Content-Security-Policy (read once, on the first request: nothing at import time)."""
    html = PAGE.read_text(encoding="utf-8")
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in _INLINE.findall(html):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        hashes[kind].append(f"'sha256-{digest}'")
    csp = "; ".join(
        (
            "default-src 'none'",
            f"script-src {' '.join(hashes['script'])}",
            f"style-src {' '.join(hashes['style'])}",
            "connect-src 'self'",
            "img-src 'self' data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )
    return html.encode(), csp


def playground_response() -> Response:
    body, csp = page()
    headers = {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }
    return Response(body, media_type="text/html; charset=utf-8", headers=headers)
