"""``GET /.well-known/acme-challenge/{token}``: the http-01 key authorization the CA fetches (RFC 8555 §8.3). No
token and no tenant: the CA knows only the token. Any API replica answers (the worker writes the tokens to
PostgreSQL while an order runs and deletes them afterwards). Unknown or malformed tokens are a plain 404. Rate-limited per client
address like the other public routes (HEALTH_RATE_LIMIT_PER_MINUTE)."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request, Response

from api.deps import app_state
from api.routers.health import Public
from services.acme import challenges

router = APIRouter(tags=["acme"])
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


@router.get("/.well-known/acme-challenge/{token}", summary="http-01 key authorization (no token)",
                      responses={200: {"content": {"text/plain": {}}},
                                 404: {"description": "no such challenge token (unknown, finished or malformed)"}},
                      dependencies=[Public])
async def acme_challenge(token: str, request: Request) -> Response:
    key_auth = None
    if _TOKEN.match(token):
        async with app_state(request).db.raw() as conn:
            key_auth = await challenges.key_authorization(conn, token)
    if key_auth is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(key_auth, media_type="text/plain")
