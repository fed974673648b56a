"""Approval requests in Redis: the records, the open index, and the exactly-once decision claim.

A request is a Redis hash with one JSON value per field, so the sync (which records where
the card is) and a click (which records the decision) each write only their own fields and
never overwrite the other's. The claim on a decision is a plain `SET NX`: the first caller
wins; it carries a random token so only its holder can finish or release it.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ValidationError
from redis.typing import EncodableT, FieldT

from bot.approvals import keys
from bot.core.keys import DAY
from bot.core.models import Course, Visibility
from bot.core.store import Redis


class RequestState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    BLOCKED = "blocked"
    GONE = "gone"  # the enrolment was deleted on the platform while it waited

    @property
    def open(self) -> bool:
        return self is RequestState.PENDING


class Decision(StrEnum):
    APPROVE = "approve"
    BLOCK = "block"

    @property
    def state(self) -> RequestState:
        return RequestState.APPROVED if self is Decision.APPROVE else RequestState.BLOCKED


class ApprovalRequest(BaseModel):
    id: str
    platform: str
    enrolment_id: str
    course_id: str
    member_id: str
    member_name: str = ""
    member_email: str = ""
    member_company: str = ""
    member_teams: list[str] = []
    course_title: str = ""
    course_visibility: Visibility = Visibility.UNKNOWN
    asked_at: datetime | None = None  # the platform's CreatedOn
    seen_at: datetime  # when the bot first saw it (our clock)
    platform_updated_on: datetime | None = None  # the platform's UpdatedOn when last read
    card_channel: str = ""
    card_ts: str = ""
    card_shows: str = ""  # signature of what the card shows now (see `card_signature`)
    state: RequestState = RequestState.PENDING
    decided_by: str = ""  # Slack user id; empty when decided outside the bot
    decided_at: datetime | None = None
    reason: str = ""
    error: str = ""  # the platform's last failure, shown on the card with Retry
    failed_action: str = ""

    @property
    def member_label(self) -> str:
        return self.member_name or self.member_email or f"member {self.member_id}"

    @property
    def waiting_since(self) -> datetime:
        return self.asked_at or self.seen_at

    def card_signature(self) -> str:
        return "|".join((self.state.value, self.decided_by, self.reason, self.error))


@dataclass(frozen=True)
class Claim:
    request_id: str
    token: str
    actor: str
    action: str


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a request's decision: `final` once the platform write is done."""

    actor: str
    action: str
    final: bool
    at: float


_CAS = """
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[1] == '') or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

_FINISH = """
local raw = redis.call('GET', KEYS[1])
if raw == false then return 0 end
if cjson.decode(raw)['token'] ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
return 1
"""

_RELEASE = """
local raw = redis.call('GET', KEYS[1])
if raw == false then return 0 end
if cjson.decode(raw)['token'] ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""


def _encode(values: dict[str, Any]) -> Mapping[FieldT, EncodableT]:
    return {name: json.dumps(value) for name, value in values.items()}


class ApprovalStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    # ---- requests ---------------------------------------------------------------------

    @staticmethod
    def new_id() -> str:
        return secrets.token_urlsafe(9)

    async def get(self, request_id: str) -> ApprovalRequest | None:
        if not request_id or len(request_id) > 64:
            return None
        raw = await self.redis.hgetall(keys.REQUEST(request_id))
        if not raw:
            return None
        try:
            return ApprovalRequest.model_validate({k: json.loads(v) for k, v in raw.items()})
        except (ValueError, ValidationError):
            return None  # a half-written record (Redis lost it mid-way): rebuilt by the next sync

    async def get_many(self, request_ids: list[str]) -> list[ApprovalRequest]:
        found = []
        for request_id in request_ids:
            request = await self.get(request_id)
            if request is not None:
                found.append(request)
        return found

    async def request_of(self, enrolment_id: str) -> str | None:
        value = await self.redis.get(keys.REQUEST_OF(enrolment_id))
        return str(value) if value else None

    async def create(self, request: ApprovalRequest, *, replacing: str | None) -> bool:
        """Store a new open request for its enrolment unless another process did first.

        `replacing` is the request id the enrolment pointed at when we looked (None if none):
        the pointer moves only if it still holds that value, so two syncs never both create.
        """
        await self.redis.hset(keys.REQUEST(request.id), mapping=_encode(request.model_dump(mode="json")))
        won = await self.redis.eval(_CAS, 1, keys.REQUEST_OF(request.enrolment_id), replacing or "", request.id)
        if not won:
            await self.redis.delete(keys.REQUEST(request.id))
            return False
        await self.redis.zadd(keys.REQUESTS_OPEN(), {request.id: request.waiting_since.timestamp()})
        return True

    async def adopt(self, request: ApprovalRequest) -> None:
        """Store a request rebuilt from a card found in the channel (after Redis lost it)."""
        await self.redis.hset(keys.REQUEST(request.id), mapping=_encode(request.model_dump(mode="json")))
        await self.redis.set(keys.REQUEST_OF(request.enrolment_id), request.id)
        if request.state.open:
            await self.redis.zadd(keys.REQUESTS_OPEN(), {request.id: request.waiting_since.timestamp()})
        else:
            await self._closed(request.id)

    async def update(self, request: ApprovalRequest, **changes: Any) -> ApprovalRequest:
        """Write only the changed fields, and return the request as changed."""
        updated = request.model_copy(update=changes)
        dumped = updated.model_dump(mode="json")
        await self.redis.hset(keys.REQUEST(request.id), mapping=_encode({k: dumped[k] for k in changes}))
        if "state" in changes and not updated.state.open:
            await self._closed(request.id)
            await self.redis.lpush(keys.DECISIONS_RECENT(), request.id)
            await self.redis.ltrim(keys.DECISIONS_RECENT(), 0, 49)
        return updated

    async def _closed(self, request_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(keys.REQUESTS_OPEN(), request_id)
            pipe.expire(keys.REQUEST(request_id), keys.REQUEST.ttl or 0)
            await pipe.execute()

    async def open_ids(self) -> list[str]:
        return [str(i) for i in await self.redis.zrange(keys.REQUESTS_OPEN(), 0, -1)]

    async def open_requests(self) -> list[ApprovalRequest]:
        """Every waiting request, oldest first."""
        return await self.get_many(await self.open_ids())

    async def waiting_before(self, moment: datetime) -> list[ApprovalRequest]:
        ids = await self.redis.zrangebyscore(keys.REQUESTS_OPEN(), "-inf", moment.timestamp())
        return await self.get_many([str(i) for i in ids])

    async def recent_decisions(self, limit: int = 10) -> list[ApprovalRequest]:
        ids = [str(i) for i in await self.redis.lrange(keys.DECISIONS_RECENT(), 0, limit * 2)]
        found = await self.get_many(list(dict.fromkeys(ids)))
        return [r for r in found if not r.state.open][:limit]

    # ---- the decision claim -----------------------------------------------------------

    async def claim(self, request_id: str, actor: str, action: str) -> Claim | None:
        token = secrets.token_hex(8)
        value = json.dumps({"token": token, "actor": actor, "action": action, "final": False, "at": time.time()})
        if await self.redis.set(keys.DECISION(request_id), value, nx=True, ex=keys.CLAIM_TTL):
            return Claim(request_id, token, actor, action)
        return None

    async def holder(self, request_id: str) -> Holder | None:
        raw = await self.redis.get(keys.DECISION(request_id))
        if not raw:
            return None
        data = json.loads(raw)
        return Holder(str(data.get("actor", "")), str(data.get("action", "")), bool(data.get("final")),
                      float(data.get("at", 0)))

    async def finish(self, claim: Claim, *, actor: str | None = None, action: str | None = None) -> None:
        """Turn the claim into the lasting record of the decision."""
        value = json.dumps({"token": claim.token, "actor": claim.actor if actor is None else actor,
                            "action": action or claim.action, "final": True, "at": time.time()})
        await self.redis.eval(_FINISH, 1, keys.DECISION(claim.request_id), claim.token, value,
                              keys.DECISION.ttl or 0)

    async def release(self, claim: Claim) -> None:
        await self.redis.eval(_RELEASE, 1, keys.DECISION(claim.request_id), claim.token)

    # ---- sync bookkeeping -------------------------------------------------------------

    async def cursor(self) -> datetime | None:
        raw = await self.redis.get(keys.SYNC_CURSOR())
        return datetime.fromisoformat(str(raw)) if raw else None

    async def set_cursor(self, moment: datetime) -> None:
        await self.redis.set(keys.SYNC_CURSOR(), moment.astimezone(UTC).isoformat())

    async def mark_synced(self) -> None:
        await self.redis.set(keys.SYNC_LAST(), str(time.time()))

    async def last_synced(self) -> float | None:
        raw = await self.redis.get(keys.SYNC_LAST())
        return float(raw) if raw else None

    async def reconcile_due(self) -> bool:
        return bool(await self.redis.set(keys.SYNC_RECONCILE(), "1", nx=True, ex=keys.SYNC_RECONCILE.ttl))

    async def courses(self) -> dict[str, Course]:
        raw = await self.redis.hgetall(keys.COURSE_CACHE())
        return {str(cid): Course.model_validate({"id": str(cid), **json.loads(v)}) for cid, v in raw.items()}

    async def cache_courses(self, courses: list[Course]) -> None:
        if not courses:
            return
        mapping: Mapping[FieldT, EncodableT] = {
            c.id: json.dumps({"title": c.title, "visibility": c.visibility.value}) for c in courses
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.COURSE_CACHE())
            pipe.hset(keys.COURSE_CACHE(), mapping=mapping)
            pipe.expire(keys.COURSE_CACHE(), keys.COURSE_CACHE.ttl or 0)
            await pipe.execute()

    async def remind_once(self, request_id: str) -> bool:
        return bool(await self.redis.set(keys.REMINDED(request_id), "1", nx=True, ex=keys.REMINDED.ttl))

    # ---- App Home and Approve all -----------------------------------------------------

    async def add_home_viewer(self, user_id: str) -> None:
        now = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(keys.HOME_VIEWERS(), {user_id: now})
            pipe.zremrangebyscore(keys.HOME_VIEWERS(), "-inf", now - 7 * DAY)
            pipe.zremrangebyrank(keys.HOME_VIEWERS(), 0, -51)
            await pipe.execute()

    async def home_viewers(self) -> list[str]:
        return [str(u) for u in await self.redis.zrange(keys.HOME_VIEWERS(), 0, -1)]

    async def save_batch(self, request_ids: list[str]) -> str:
        batch_id = secrets.token_urlsafe(9)
        await self.redis.set(keys.APPROVE_BATCH(batch_id), json.dumps(request_ids), ex=keys.APPROVE_BATCH.ttl)
        return batch_id

    async def take_batch(self, batch_id: str) -> list[str] | None:
        """The batch's request ids, once: a repeated click finds nothing."""
        if not batch_id or len(batch_id) > 64:
            return None
        raw = await self.redis.getdel(keys.APPROVE_BATCH(batch_id))
        return [str(i) for i in json.loads(raw)] if raw else None
