"""/v1/subscriptions (scopes subscriptions:read / subscriptions:write; owner only). Spec lifecycle.md §5.6."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.context import RequestContext
from api.deps import app_state, authorized
from api.routers.webhooks import Filters
from services.events import subscriptions

router = APIRouter(prefix="/v1/subscriptions", tags=["subscriptions"])
Reader = Annotated[RequestContext, Depends(authorized("subscriptions:read", "subscription_operations"))]
Writer = Annotated[RequestContext, Depends(authorized("subscriptions:write", "subscription_operations"))]
Poller = Annotated[RequestContext, Depends(authorized("subscriptions:read", "subscription_poll"))]


class Delivery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["webhook", "polling"]
    url: str | None = Field(default=None, max_length=2048)
    secret: str | None = Field(default=None, max_length=512)
    buffer_size: int | None = Field(default=None, ge=1, le=100_000)


class DeliveryPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["webhook", "polling"] | None = None
    url: str | None = Field(default=None, max_length=2048)
    secret: str | None = Field(default=None, max_length=512)
    buffer_size: int | None = Field(default=None, ge=1, le=100_000)


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128)
    paths: list[str] = Field(min_length=1, max_length=100)
    events: list[str] = Field(min_length=1, max_length=100)
    delivery: Delivery
    filters: Filters | None = None


class SubscriptionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=128)
    paths: list[str] | None = Field(default=None, min_length=1, max_length=100)
    events: list[str] | None = Field(default=None, min_length=1, max_length=100)
    delivery: DeliveryPatch | None = None
    filters: Filters | None = None


# Event ids are ``evt_<ulid>``; anything outside this alphabet cannot name one of ours and is refused with 422 before
# it reaches a query (a NUL or an unpaired surrogate made PostgreSQL fail the request with a 500).
EVENT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
EventId = Annotated[str, Field(pattern=EVENT_ID_PATTERN)]


class AckBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_ids: list[EventId] = Field(min_length=1, max_length=1000)


@router.post("", status_code=201, summary="Create a subscription (owned by the caller)")
async def create_subscription(body: SubscriptionCreate, ctx: Writer, request: Request) -> dict[str, Any]:
    ctx.describe("subscription_create", resource_type="subscription")
    return await subscriptions.create(
        app_state(request), ctx, name=body.name, paths=body.paths, events=body.events,
        delivery=body.delivery.model_dump(), filters=body.filters.model_dump() if body.filters else None)


@router.get("", summary="List the caller's subscriptions")
async def list_subscriptions(ctx: Reader, request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                             cursor: str | None = None) -> dict[str, Any]:
    ctx.describe("subscription_list", resource_type="subscription")
    return await subscriptions.list_subscriptions(app_state(request), ctx, cursor=cursor, limit=limit)


@router.get("/{sub_id}", summary="One subscription")
async def get_subscription(sub_id: str, ctx: Reader, request: Request) -> dict[str, Any]:
    ctx.describe("subscription_read", resource_type="subscription", resource_id=sub_id)
    return await subscriptions.get(app_state(request), ctx, sub_id)


@router.patch("/{sub_id}", summary="Change paths, events, filters or delivery")
async def update_subscription(sub_id: str, body: SubscriptionUpdate, ctx: Writer, request: Request) -> dict[str, Any]:
    ctx.describe("subscription_update", resource_type="subscription", resource_id=sub_id)
    fields = body.model_dump(exclude_unset=True)
    if body.delivery is not None:
        fields["delivery"] = body.delivery.model_dump(exclude_none=True)
    return await subscriptions.update(app_state(request), ctx, sub_id, fields)


@router.delete("/{sub_id}", status_code=204, summary="Delete a subscription and its buffer")
async def delete_subscription(sub_id: str, ctx: Writer, request: Request) -> Response:
    ctx.describe("subscription_delete", resource_type="subscription", resource_id=sub_id)
    await subscriptions.delete(app_state(request), ctx, sub_id)
    return Response(status_code=204)


@router.get("/{sub_id}/poll", summary="Long-poll un-acked events (owner only)")
async def poll(sub_id: str, ctx: Poller, request: Request,
               timeout: Annotated[float, Query(ge=0, le=60)] = 30,  # noqa: ASYNC109
               since_event_id: Annotated[str | None, Query(pattern=EVENT_ID_PATTERN)] = None,
               max_events: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    ctx.describe("subscription_event", resource_type="subscription", resource_id=sub_id)
    return await subscriptions.poll(app_state(request), ctx, sub_id, wait_seconds=timeout,
                                    since_event_id=since_event_id, max_events=max_events)


@router.post("/{sub_id}/ack", summary="Acknowledge events; un-acked ones are delivered again")
async def ack(sub_id: str, body: AckBody, ctx: Writer, request: Request) -> dict[str, Any]:
    ctx.describe("subscription_ack", resource_type="subscription", resource_id=sub_id)
    return await subscriptions.ack(app_state(request), ctx, sub_id, body.event_ids)
