"""What the bot asks of Slack about people: emails, channel members, user groups.

Services depend on the `Directory` protocol, not on Slack's client; `SlackDirectory`
implements it over slack_sdk's AsyncWebClient with short Redis caches.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import keys
from bot.core.directory import DirectoryError, Person
from bot.core.store import Redis

log = logging.getLogger(__name__)

PEOPLE_LIST_ABOVE = 200  # more users than this are read from users.list rather than one users.info each


def _person(user: dict[str, Any]) -> Person:
    profile = user.get("profile") or {}
    return Person(
        user_id=str(user["id"]),
        email=str(profile.get("email") or "").strip().lower(),
        name=str(profile.get("real_name") or user.get("real_name") or user.get("name") or ""),
        is_bot=bool(user.get("is_bot") or user.get("id") == "USLACKBOT"),
        deleted=bool(user.get("deleted")),
    )


class SlackDirectory:
    def __init__(self, client: AsyncWebClient, redis: Redis) -> None:
        self.client = client
        self.redis = redis

    async def _profile(self, user_id: str) -> dict[str, Any] | None:
        try:
            response = await self.client.users_info(user=user_id)
        except SlackApiError as exc:
            if exc.response.get("error") == "user_not_found":
                return None
            raise DirectoryError(f"Slack did not tell me who <@{user_id}> is ({exc.response.get('error')}).") from None
        user: dict[str, Any] = response["user"]
        return user

    async def email_of(self, user_id: str) -> str | None:
        cached = await self.redis.get(keys.SLACK_EMAIL(user_id))
        if cached is not None:
            return str(cached) or None
        user = await self._profile(user_id)
        email = str(((user or {}).get("profile") or {}).get("email") or "").strip().lower()
        await self.redis.set(keys.SLACK_EMAIL(user_id), email, ex=keys.SLACK_EMAIL.ttl)
        return email or None

    async def people(self, user_ids: list[str]) -> dict[str, Person]:
        """Each user Slack knows (users.info each, a few at a time; for many, users.list pages instead,
        which costs one call per 1,000 users of the workspace). Unknown ids are left out."""
        wanted = list(dict.fromkeys(user_ids))
        found: dict[str, Person] = {}
        if len(wanted) > PEOPLE_LIST_ABOVE:
            remaining = set(wanted)
            cursor: str | None = None
            try:
                while remaining:
                    response = await self.client.users_list(cursor=cursor, limit=1000)
                    for user in response.get("members") or []:
                        if user.get("id") in remaining:
                            remaining.discard(user["id"])
                            found[user["id"]] = _person(user)
                    cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
                    if not cursor:
                        break
            except SlackApiError as exc:
                raise DirectoryError(f"Slack did not list the workspace's people ({exc.response.get('error')}).") \
                    from None
        else:
            limit = asyncio.Semaphore(8)

            async def one(user_id: str) -> None:
                async with limit:
                    user = await self._profile(user_id)
                if user is not None:
                    found[user_id] = _person(user)

            await asyncio.gather(*(one(user_id) for user_id in wanted))
        async with self.redis.pipeline(transaction=False) as pipe:
            for person in found.values():
                pipe.set(keys.SLACK_EMAIL(person.user_id), person.email, ex=keys.SLACK_EMAIL.ttl)
            await pipe.execute()
        return {user_id: found[user_id] for user_id in wanted if user_id in found}

    async def is_bot(self, user_id: str) -> bool:
        user = await self._profile(user_id)
        return bool(user and (user.get("is_bot") or user.get("deleted") or user_id == "USLACKBOT"))

    async def user_by_email(self, email: str) -> str | None:
        try:
            response = await self.client.users_lookupByEmail(email=email)
        except SlackApiError as exc:
            if exc.response.get("error") == "users_not_found":
                return None
            raise DirectoryError(f"Slack could not look up {email} ({exc.response.get('error')}).") from None
        return str(response["user"]["id"])

    async def channel_members(self, channel_id: str) -> list[str]:
        members: list[str] = []
        cursor: str | None = None
        try:
            while True:
                response = await self.client.conversations_members(channel=channel_id, cursor=cursor, limit=200)
                members.extend(response.get("members") or [])
                cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    return members
        except SlackApiError as exc:
            error = exc.response.get("error")
            if error in ("channel_not_found", "not_in_channel"):
                raise DirectoryError(
                    f"I can't see the members of <#{channel_id}>: invite me to it first (`/invite @coursebot`)."
                ) from None
            raise DirectoryError(f"Slack did not list the members of <#{channel_id}> ({error}).") from None

    async def usergroup_members(self, group_id: str) -> list[str]:
        cached = await self.redis.get(keys.USERGROUP(group_id))
        if cached is not None:
            return list(json.loads(cached))
        try:
            response = await self.client.usergroups_users_list(usergroup=group_id)
        except SlackApiError as exc:
            raise DirectoryError(
                f"Slack did not list the members of user group {group_id} ({exc.response.get('error')})."
            ) from None
        users = list(response.get("users") or [])
        await self.redis.set(keys.USERGROUP(group_id), json.dumps(users), ex=keys.USERGROUP.ttl)
        return users
