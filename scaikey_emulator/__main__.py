"""CLI: ``python -m scaikey_emulator --host 127.0.0.1 --port PORT [--seed dev|empty|PATH] ...``."""

from __future__ import annotations

import argparse

import uvicorn

from scaikey_emulator.app import create_app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scaikey_emulator", description="Local ScaiKey emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--seed", default="dev", help="dev | empty | path to a seed JSON file")
    parser.add_argument(
        "--scaivault-client-secret",
        default=None,
        help='secret of the "scaivault" app (default dev-insecure-client-secret)',
    )
    parser.add_argument(
        "--admin-token-lifetime",
        type=int,
        default=None,
        help='token lifetime (s) of the "dev-admin" app (default 3600)',
    )
    parser.add_argument("--base-url", default=None, help="externally visible URL (default http://HOST:PORT)")
    parser.add_argument("--log-level", default="warning")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    base_url = args.base_url or f"http://{args.host}:{args.port}"
    app = create_app(
        args.seed,
        base_url,
        scaivault_client_secret=args.scaivault_client_secret,
        admin_token_lifetime=args.admin_token_lifetime,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, workers=1)


if __name__ == "__main__":
    main()
