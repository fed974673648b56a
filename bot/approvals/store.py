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
    decided_via: str = ""  # where the decision was made: card, list, home, digest, command, approve all, rule
    reason: str = ""
    error: str = ""  # the platform's last failure, shown on the card with Retry
    failed_action: str = ""
    quorum: int = 1  # how many different people must approve before the platform is written
    approvals: list[str] = []  # who approved so far (Slack user ids), while fewer than `quorum`
    approvers: list[str] = []  # who is expected to decide besides the managers (user or group ids)

    @property
    def member_label(self) -> str:
        return self.member_name or self.member_email or f"member {self.member_id}"

    @property
    def waiting_since(self) -> datetime:
        return self.asked_at or self.seen_at

    def card_signature(self) -> str:
        return "|".join((self.state.value, self.decided_by, self.reason, self.error, str(self.quorum),
                         ",".join(self.approvals), ",".join(self.approvers)))


class DecisionRecord(BaseModel):
    """The last decision the bot made on an enrolment: who, when, from where, why."""

    enrolment_id: str
    course_id: str
    member_id: str
    action: str  # approve, block, unblock, enrol
    actor: str  # Slack user id; "rule:<what>" when a rule decided
    at: datetime
    via: str
    reason: str = ""
    request_id: str = ""


_CAS = """
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[1] == '') or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
  return 1
end
return 0
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
        won = await self.redis.eval(_CAS, 1, keys.REQUEST_OF(request.enrolment_id), replacing or "", request.id,
                                    keys.REQUEST_OF.ttl or 0)
        if not won:
            await self.redis.delete(keys.REQUEST(request.id))
            return False
        await self.redis.set(keys.REQUEST_FOR(request.course_id, request.member_id), request.id,
                             ex=keys.REQUEST_FOR.ttl)
        await self.redis.zadd(keys.REQUESTS_OPEN(), {request.id: request.waiting_since.timestamp()})
        return True

    async def adopt(self, request: ApprovalRequest) -> None:
        """Store a request rebuilt from a card found in the channel (after Redis lost it)."""
        await self.redis.hset(keys.REQUEST(request.id), mapping=_encode(request.model_dump(mode="json")))
        await self.redis.set(keys.REQUEST_OF(request.enrolment_id), request.id, ex=keys.REQUEST_OF.ttl)
        await self.redis.set(keys.REQUEST_FOR(request.course_id, request.member_id), request.id,
                             ex=keys.REQUEST_FOR.ttl)
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

    async def request_for(self, course_id: str, member_id: str) -> str | None:
        """The latest request of the enrolment of this member in this course, if any."""
        value = await self.redis.get(keys.REQUEST_FOR(course_id, member_id))
        return str(value) if value else None

    # ---- decision records and approvals given ------------------------------------------

    async def record(self, record: DecisionRecord) -> None:
        await self.redis.set(keys.DECISION_RECORD(record.enrolment_id), record.model_dump_json(),
                             ex=keys.DECISION_RECORD.ttl)

    async def last_decision(self, enrolment_id: str) -> DecisionRecord | None:
        raw = await self.redis.get(keys.DECISION_RECORD(enrolment_id))
        if not raw:
            return None
        try:
            return DecisionRecord.model_validate_json(raw)
        except ValidationError:
            return None

    async def add_approval(self, request_id: str, user_id: str) -> dict[str, float]:
        """Count `user_id`'s approval once; returns everyone's so far (user id -> when)."""
        key = keys.APPROVALS_GIVEN(request_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, user_id, str(time.time()))
            pipe.expire(key, keys.APPROVALS_GIVEN.ttl or 0)
            pipe.hgetall(key)
            *_, given = await pipe.execute()
        return {str(u): float(t) for u, t in given.items()}

    async def approvals_given(self, request_id: str) -> dict[str, float]:
        given = await self.redis.hgetall(keys.APPROVALS_GIVEN(request_id))
        return {str(u): float(t) for u, t in given.items()}

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

    async def forget_reminders(self, request_ids: list[str]) -> None:
        """The reminder was not posted: these requests are due again next round."""
        if request_ids:
            await self.redis.delete(*(keys.REMINDED(i) for i in request_ids))

    async def escalate_once(self, request_id: str) -> bool:
        return bool(await self.redis.set(keys.ESCALATED(request_id), "1", nx=True, ex=keys.ESCALATED.ttl))

    async def forget_escalations(self, request_ids: list[str]) -> None:
        if request_ids:
            await self.redis.delete(*(keys.ESCALATED(i) for i in request_ids))

    async def summary_once(self, first_request_id: str) -> bool:
        return bool(await self.redis.set(keys.CARDS_SUMMARY(first_request_id), "1", nx=True,
                                         ex=keys.CARDS_SUMMARY.ttl))

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
