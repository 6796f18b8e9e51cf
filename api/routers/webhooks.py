"""/v1/webhooks (scope admin, rate category webhook_operations). Spec lifecycle.md §5.3-5.5."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.context import RequestContext
from api.deps import app_state, authorized
from services.events import webhooks

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
Admin = Annotated[RequestContext, Depends(authorized("admin", "webhook_operations"))]


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path_prefix: str | None = Field(default=None, max_length=512)
    secret_type: str | list[str] | None = None
    tags: list[str] | dict[str, str] | None = None


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128)
    url: str = Field(min_length=1, max_length=2048)
    secret: str = Field(min_length=1, max_length=512, description="HMAC signing secret, 32+ bytes recommended")
    events: list[str] = Field(min_length=1, max_length=100)
    filters: Filters | None = None
    enabled: bool = True


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=128)
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    secret: str | None = Field(default=None, min_length=1, max_length=512)
    previous_secret_ttl: str | None = Field(default=None, description="keep the old secret valid, e.g. 24h")
    events: list[str] | None = Field(default=None, min_length=1, max_length=100)
    filters: Filters | None = None
    enabled: bool | None = None


@router.post("", status_code=201, summary="Create a webhook (the secret is stored sealed, never returned)")
async def create_webhook(body: WebhookCreate, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("webhook_create", resource_type="webhook")
    return await webhooks.create(app_state(request), ctx, name=body.name, url=body.url, secret=body.secret,
                                 events=body.events, filters=body.filters.model_dump() if body.filters else None,
                                 enabled=body.enabled)


@router.get("", summary="List webhooks")
async def list_webhooks(ctx: Admin, request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                        cursor: str | None = None) -> dict[str, Any]:
    ctx.describe("webhook_list", resource_type="webhook")
    return await webhooks.list_webhooks(app_state(request), ctx, cursor=cursor, limit=limit)


@router.get("/{webhook_id}", summary="One webhook with 24h statistics and its last delivery")
async def get_webhook(webhook_id: str, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("webhook_read", resource_type="webhook", resource_id=webhook_id)
    return await webhooks.get(app_state(request), ctx, webhook_id)


@router.patch("/{webhook_id}", summary="Update a webhook; secret + previous_secret_ttl rotates the signing secret")
async def update_webhook(webhook_id: str, body: WebhookUpdate, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("webhook_update", resource_type="webhook", resource_id=webhook_id)
    fields = body.model_dump(exclude_unset=True)
    return await webhooks.update(app_state(request), ctx, webhook_id, fields)


@router.delete("/{webhook_id}", status_code=204, summary="Delete a webhook (pending deliveries are abandoned)")
async def delete_webhook(webhook_id: str, ctx: Admin, request: Request) -> Response:
    ctx.describe("webhook_delete", resource_type="webhook", resource_id=webhook_id)
    await webhooks.delete(app_state(request), ctx, webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", summary="The delivery log, newest first")
async def list_deliveries(webhook_id: str, ctx: Admin, request: Request,
                          status: Literal["success", "failed", "pending"] | None = None,
                          limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                          cursor: str | None = None) -> dict[str, Any]:
    ctx.describe("webhook_deliveries", resource_type="webhook", resource_id=webhook_id)
    return await webhooks.list_deliveries(app_state(request), ctx, webhook_id, status=status, cursor=cursor,
                                          limit=limit)


@router.post("/{webhook_id}/test", summary="Send a synthetic webhook.test event synchronously")
async def test_webhook(webhook_id: str, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("webhook_delivery", resource_type="webhook", resource_id=webhook_id)
    return await webhooks.send_test(app_state(request), ctx, webhook_id)


@router.post("/{webhook_id}/deliveries/{delivery_id}/redeliver", status_code=202,
             summary="Deliver again (dead-lettered deliveries get a fresh retry schedule)")
async def redeliver(webhook_id: str, delivery_id: str, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("webhook_redeliver", resource_type="webhook", resource_id=webhook_id)
    return await webhooks.redeliver(app_state(request), ctx, webhook_id, delivery_id)
