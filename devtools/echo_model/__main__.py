"""`python -m devtools.echo_model [--port N] [--label TEXT] [--context-window TOKENS]`: serve the echo model.

The context window is in the model's estimated tokens (whitespace-separated words); its default comes from the
ECHO_MODEL_CONTEXT_WINDOW environment variable (unset: no limit). The base URL to give an OpenAI client is
printed once the server listens.
"""

from __future__ import annotations

import argparse
import os
import socket

from .app import EchoModel


def _window(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("the context window must be at least 1 token")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.echo_model", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--label", default="", help="text put before every reply, e.g. '[echo model]'")
    default_window = os.environ.get("ECHO_MODEL_CONTEXT_WINDOW") or None
    parser.add_argument(
        "--context-window",
        type=_window,
        default=_window(default_window) if default_window else None,
        help="most estimated tokens (words) one request may send (default: $ECHO_MODEL_CONTEXT_WINDOW, else none)",
    )
    args = parser.parse_args(argv)
    import uvicorn

    model = EchoModel(label=args.label, context_window=args.context_window)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY, see serving
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(128)  # before the URL is printed: a client connecting at once waits in the backlog, not refused
    print(f"echo model on http://127.0.0.1:{listener.getsockname()[1]}/v1", flush=True)
    uvicorn.Server(uvicorn.Config(model, lifespan="off", log_level="warning")).run(sockets=[listener])


if __name__ == "__main__":
    main()
