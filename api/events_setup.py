"""Component set-up for events: the webhook sender (test sends) and the subscription long-poll notifier."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from api.state import AppState
from services.events.subscriptions import SubscriptionNotifier
from services.events.webhook_sender import WebhookSender


async def setup(state: AppState) -> Callable[[], Awaitable[None]]:
    sender = WebhookSender(state.settings, max_connections=20)
    pubsub_redis = aioredis.Redis.from_url(state.settings.redis_url, socket_connect_timeout=1, socket_timeout=None)
    notifier = SubscriptionNotifier(pubsub_redis)
    notifier.start()
    state.components.update(webhook_sender=sender, subscription_notifier=notifier)

    async def teardown() -> None:
        await notifier.stop()
        await pubsub_redis.aclose()
        await sender.aclose()

    return teardown
