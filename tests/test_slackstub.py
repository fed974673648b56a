"""The local Slack Web API stub, driven by the real slack_sdk async clients over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from devtools.slack_stub import SlackWorkspace, create_app
from tests.conftest import SERVERS


@pytest.fixture
def ws() -> SlackWorkspace:
    workspace = SlackWorkspace(token="xoxb-test")
    workspace.add_user("U1", "ada", "Ada@Example.com", real_name="Ada Lovelace", tz="Europe/London")
    workspace.add_user("U2", "bob", "bob@example.com")
    workspace.add_channel("C1", "general", ["U1", "U2"])
    workspace.add_usergroup("S1", "tutors", ["U1"])
    return workspace


@pytest.fixture
def url(ws: SlackWorkspace) -> Iterator[str]:
    with SERVERS.serve(create_app(ws)) as base:
        ws.base_url = base
        yield base


@pytest.fixture
def client(url: str) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=url + "/api/")


async def test_auth_test_and_bad_tokens(client: AsyncWebClient, url: str) -> None:
    resp = await client.auth_test()
    assert resp["ok"] is True
    assert (resp["team_id"], resp["user_id"], resp["bot_id"]) == ("T0001", "U0BOT", "B0BOT")

    for token in ("xoxb-wrong", None):
        bad = AsyncWebClient(token=token, base_url=url + "/api/")
        with pytest.raises(SlackApiError) as err:
            await bad.auth_test()
        assert err.value.response["error"] == "invalid_auth"
        assert err.value.response.status_code == 200


async def test_users_lookup_info_and_list(client: AsyncWebClient) -> None:
    resp = await client.users_lookupByEmail(email="ada@EXAMPLE.com")
    user = resp["user"]
    assert user["id"] == "U1"
    assert user["profile"]["email"] == "Ada@Example.com"
    assert user["real_name"] == user["profile"]["real_name"] == "Ada Lovelace"
    assert user["tz"] == "Europe/London"
    assert user["deleted"] is False and user["is_bot"] is False

    with pytest.raises(SlackApiError) as err:
        await client.users_lookupByEmail(email="nobody@example.com")
    assert err.value.response["error"] == "users_not_found"

    assert (await client.users_info(user="U0BOT"))["user"]["is_bot"] is True
    with pytest.raises(SlackApiError) as err:
        await client.users_info(user="U404")
    assert err.value.response["error"] == "user_not_found"

    first = await client.users_list(limit=2)
    assert len(first["members"]) == 2
    rest = await client.users_list(limit=2, cursor=first["response_metadata"]["next_cursor"])
    assert [m["id"] for m in first["members"] + rest["members"]] == ["U0BOT", "U1", "U2"]
    assert rest["response_metadata"]["next_cursor"] == ""


async def test_conversations_members_paginates(ws: SlackWorkspace, client: AsyncWebClient) -> None:
    members = [f"U{i:04d}" for i in range(250)]
    ws.add_channel("C2", "big", members)

    seen: list[str] = []
    cursors: list[str] = []
    cursor: str | None = None
    while True:
        resp = await client.conversations_members(channel="C2", cursor=cursor)
        seen.extend(resp["members"])
        cursor = resp["response_metadata"]["next_cursor"]
        cursors.append(cursor)
        if not cursor:
            break
    assert seen == members
    assert len(cursors) == 3 and cursors[-1] == ""
    assert all(c and not c.isdigit() for c in cursors[:-1])  # opaque

    small = await client.conversations_members(channel="C2", limit=1000)
    assert len(small["members"]) == 250 and small["response_metadata"]["next_cursor"] == ""

    with pytest.raises(SlackApiError) as err:
        await client.conversations_members(channel="C404")
    assert err.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as err:
        await client.conversations_members(channel="C2", cursor="bogus")
    assert err.value.response["error"] == "invalid_cursor"


async def test_post_update_and_history_with_metadata(ws: SlackWorkspace, client: AsyncWebClient) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    ws.subscribe(lambda kind, payload: events.append((kind, payload)))
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "Request *42*"}}]
    metadata = {"event_type": "enrol_request", "event_payload": {"request_id": "42"}}

    posted = await client.chat_postMessage(channel="C1", text="Request 42", blocks=blocks, metadata=metadata)
    assert posted["channel"] == "C1"
    ts = posted["ts"]
    assert posted["message"]["text"] == "Request 42"
    second = await client.chat_postMessage(channel="#general", text="later")
    assert second["ts"] > ts

    updated = await client.chat_update(channel="C1", ts=ts, text="Approved by <@U1>", blocks=[])
    assert (updated["channel"], updated["ts"]) == ("C1", ts)

    stored = ws.messages("C1")
    assert [m["ts"] for m in stored] == [ts, second["ts"]]
    assert stored[0]["text"] == "Approved by <@U1>"
    assert stored[0]["blocks"] == []
    assert stored[0]["metadata"] == metadata  # kept: chat.update did not send metadata
    assert stored[0]["user"] == "U0BOT" and stored[0]["thread_ts"] is None

    history = await client.conversations_history(channel="C1", include_all_metadata=True)
    assert [m["ts"] for m in history["messages"]] == [second["ts"], ts]  # newest first
    assert history["messages"][1]["metadata"] == metadata
    assert history["messages"][1]["bot_id"] == "B0BOT"
    assert history["has_more"] is False

    plain = await client.conversations_history(channel="C1")
    assert all("metadata" not in m for m in plain["messages"])

    page = await client.conversations_history(channel="C1", limit=1)
    assert page["has_more"] is True and [m["ts"] for m in page["messages"]] == [second["ts"]]
    page2 = await client.conversations_history(channel="C1", limit=1, cursor=page["response_metadata"]["next_cursor"])
    assert [m["ts"] for m in page2["messages"]] == [ts] and page2["has_more"] is False

    assert [kind for kind, _ in events] == ["message", "message", "update"]
    assert events[2][1]["text"] == "Approved by <@U1>"

    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel="C1", ts="1.000000", text="x")
    assert err.value.response["error"] == "message_not_found"
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C404", text="x")
    assert err.value.response["error"] == "channel_not_found"


async def test_threads_dms_ephemeral_and_delete(ws: SlackWorkspace, client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(channel="C1", text="parent")
    reply = await client.chat_postMessage(channel="C1", text="reply", thread_ts=parent["ts"])
    history = await client.conversations_history(channel="C1")
    assert [m["text"] for m in history["messages"]] == ["parent"]
    assert history["messages"][0]["reply_count"] == 1
    replies = await client.conversations_replies(channel="C1", ts=parent["ts"])
    assert [m["ts"] for m in replies["messages"]] == [parent["ts"], reply["ts"]]

    dm = await client.chat_postMessage(channel="U1", text="hi in DM")
    assert dm["channel"] == "DU1"
    opened = await client.conversations_open(users="U1")
    assert opened["channel"]["id"] == "DU1"
    assert (await client.conversations_members(channel="DU1"))["members"] == ["U0BOT", "U1"]
    assert [m["text"] for m in ws.messages("DU1")] == ["hi in DM"]

    eph = await client.chat_postEphemeral(channel="C1", user="U2", text="only you")
    assert eph["message_ts"]
    assert ws.ephemeral[0]["channel"] == "C1" and ws.ephemeral[0]["user"] == "U2"
    assert ws.messages("C1")[-1]["text"] == "reply"  # ephemeral kept apart

    await client.chat_delete(channel="C1", ts=reply["ts"])
    assert [m["text"] for m in ws.messages("C1")] == ["parent"]


async def test_form_encoded_json_strings_and_get(ws: SlackWorkspace, client: AsyncWebClient, url: str) -> None:
    blocks = [{"type": "section", "text": {"type": "plain_text", "text": "form"}}]
    metadata = {"event_type": "e", "event_payload": {"k": 1}}
    resp = await client.api_call(
        "chat.postMessage",
        data={"channel": "C1", "text": "form", "blocks": json.dumps(blocks), "metadata": json.dumps(metadata)},
    )
    assert resp["ok"]
    stored = ws.messages("C1")[0]
    assert stored["blocks"] == blocks and stored["metadata"] == metadata

    via_get = await client.api_call("conversations.info", http_verb="GET", params={"channel": "C1"})
    assert via_get["channel"]["name"] == "general"

    with pytest.raises(SlackApiError) as err:
        await client.api_call("chat.postMessage", data={"channel": "C1", "blocks": "[not json"})
    assert err.value.response["error"] == "invalid_blocks_format"

    assert (await client.api_call("reactions.add", params={"name": "eyes"}))["ok"] is True
    assert ws.calls_to("reactions.add") == [{"name": "eyes"}]
    assert ws.call_count("chat.postMessage") == 2


async def test_usergroups(client: AsyncWebClient) -> None:
    groups = await client.usergroups_list(include_users=True)
    assert groups["usergroups"][0]["handle"] == "tutors"
    assert groups["usergroups"][0]["users"] == ["U1"]
    assert (await client.usergroups_users_list(usergroup="S1"))["users"] == ["U1"]
    with pytest.raises(SlackApiError) as err:
        await client.usergroups_users_list(usergroup="S404")
    assert err.value.response["error"] == "no_such_subteam"


async def test_ratelimit_and_failures(ws: SlackWorkspace, client: AsyncWebClient, url: str) -> None:
    ws.ratelimit_next("chat.postMessage", 1, retry_after=7)
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C1", text="hello")
    assert err.value.response.status_code == 429
    assert err.value.response["error"] == "ratelimited"
    assert err.value.response.headers["Retry-After"] == "7"
    assert ws.messages("C1") == []
    # consumed: the next call goes through
    await client.chat_postMessage(channel="C1", text="hello")

    retrying = AsyncWebClient(
        token="xoxb-test",
        base_url=url + "/api/",
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    ws.ratelimit_next("chat.postMessage", 1, retry_after=0)
    before = ws.call_count("chat.postMessage")
    assert (await retrying.chat_postMessage(channel="C1", text="again"))["ok"]
    assert ws.call_count("chat.postMessage") == before + 2
    assert [m["text"] for m in ws.messages("C1")] == ["hello", "again"]

    ws.fail_next("users.info", 2, error="fatal_error")
    for _ in range(2):
        with pytest.raises(SlackApiError) as err:
            await client.users_info(user="U1")
        assert err.value.response["error"] == "fatal_error"
    assert (await client.users_info(user="U1"))["ok"]


async def test_views(ws: SlackWorkspace, client: AsyncWebClient) -> None:
    modal = {
        "type": "modal",
        "callback_id": "enrol",
        "title": {"type": "plain_text", "text": "Enrol"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}],
    }
    trigger = ws.new_trigger_id()
    opened = await client.views_open(trigger_id=trigger, view=modal)
    view = opened["view"]
    assert view["id"].startswith("V") and view["state"] == {"values": {}}
    assert view["callback_id"] == "enrol"
    with pytest.raises(SlackApiError) as err:
        await client.views_open(trigger_id=trigger, view=modal)
    assert err.value.response["error"] == "exchanged_trigger_id"

    with pytest.raises(SlackApiError) as err:
        await client.views_update(view_id=view["id"], hash="stale", view=modal)
    assert err.value.response["error"] == "hash_conflict"
    new_title = {**modal, "title": {"type": "plain_text", "text": "Done"}}
    updated = await client.views_update(view_id=view["id"], hash=view["hash"], view=new_title)
    assert updated["view"]["title"]["text"] == "Done"
    assert [(v["method"], v["view_id"]) for v in ws.views] == [
        ("views.open", view["id"]),
        ("views.update", view["id"]),
    ]
    assert ws.views[0]["trigger_id"] == trigger

    with pytest.raises(SlackApiError) as err:
        await client.views_open(
            trigger_id=ws.new_trigger_id(), view={**modal, "title": {"type": "plain_text", "text": "x" * 25}}
        )
    assert err.value.response["error"] == "invalid_arguments"

    home = {"type": "home", "blocks": []}
    await client.views_publish(user_id="U1", view=home)
    assert ws.home_views["U1"]["type"] == "home"


async def test_files_upload_v2(ws: SlackWorkspace, client: AsyncWebClient, url: str) -> None:
    events: list[str] = []
    ws.subscribe(lambda kind, payload: events.append(kind))
    content = b"name,email\r\nada,ada@example.com\r\n\x00\xff"
    resp = await client.files_upload_v2(
        channel="C1", content=content, filename="roster.csv", title="Roster", initial_comment="here"
    )
    assert resp["file"]["name"] == "roster.csv"
    assert resp["file"]["title"] == "Roster"
    [record] = ws.files
    assert record["bytes"] == content
    assert (record["filename"], record["title"], record["channel"]) == ("roster.csv", "Roster", "C1")
    assert record["initial_comment"] == "here"
    assert events == ["file"]
    assert ws.call_count("files.getUploadURLExternal") == 1
    assert ws.call_count("files.completeUploadExternal") == 1

    # the upload URL also takes multipart bodies
    got = await client.files_getUploadURLExternal(filename="a.txt", length=3)
    form = aiohttp.FormData()
    form.add_field("file", b"abc", filename="a.txt")
    async with aiohttp.ClientSession() as session, session.post(got["upload_url"], data=form) as res:
        assert res.status == 200
        assert await res.text() == "OK - 3"
    done = await client.files_completeUploadExternal(files=[{"id": got["file_id"], "title": "A"}], channel_id="C1")
    assert done["files"][0]["id"] == got["file_id"]
    assert ws.files[1]["bytes"] == b"abc"

    with pytest.raises(SlackApiError) as err:
        await client.files_completeUploadExternal(files=[{"id": "F404"}], channel_id="C1")
    assert err.value.response["error"] == "file_not_found"


async def test_response_url(ws: SlackWorkspace, client: AsyncWebClient, url: str) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    ws.subscribe(lambda kind, payload: events.append((kind, payload)))
    card = await client.chat_postMessage(channel="C1", text="Approve?")
    response_url = ws.new_response_url(channel="C1", message_ts=card["ts"], user="U1")
    assert response_url.startswith(url + "/respond/")

    webhook = AsyncWebhookClient(response_url)
    resp = await webhook.send(text="Approved", replace_original=True)
    assert (resp.status_code, resp.body) == (200, "ok")
    [recorded] = ws.responses
    assert recorded["text"] == "Approved" and recorded["replace_original"] is True
    assert recorded["url_id"] == response_url.rsplit("/", 1)[1]
    assert events[-1][0] == "response"
    assert ws.messages("C1")[0]["text"] == "Approved"  # replace_original acts on the card

    eph = await webhook.send(text="just you", response_type="ephemeral")
    assert eph.status_code == 200
    assert [m["text"] for m in ws.messages("C1")] == ["Approved"]

    for _ in range(3):
        assert (await webhook.send(text="more")).status_code == 200
    over = await webhook.send(text="sixth")
    assert over.status_code == 404 and over.body == "used_url"

    unknown = await AsyncWebhookClient(url + "/respond/nope").send(text="x")
    assert unknown.status_code == 404


async def test_concurrent_posts_get_unique_increasing_ts(ws: SlackWorkspace, client: AsyncWebClient) -> None:
    import asyncio

    channels = [f"C{n}" for n in range(1, 9)]
    for channel in channels[1:]:
        ws.add_channel(channel, channel.lower(), ["U1"])
    # 40 at once: 5 into each of 8 channels (each channel's burst; a sixth would be ratelimited)
    results = await asyncio.gather(*(client.chat_postMessage(channel=channels[i % 8], text=str(i)) for i in range(40)))
    stamps = [r["ts"] for r in results]
    assert len(set(stamps)) == 40
    for channel in channels:
        stored = [m["ts"] for m in ws.messages(channel)]
        assert len(stored) == 5 and stored == sorted(stored, key=lambda ts: tuple(int(p) for p in ts.split(".")))


async def test_socket_mode_tokens_urls_and_envelopes(client: AsyncWebClient, url: str, ws: SlackWorkspace) -> None:
    app = AsyncWebClient(token=ws.app_token, base_url=url + "/api/")
    with pytest.raises(SlackApiError) as err:
        await client.apps_connections_open(app_token="xoxb-test")  # a bot token cannot open a socket
    assert err.value.response["error"] == "not_allowed_token_type"
    with pytest.raises(SlackApiError) as err:
        await app.auth_test()  # nor can the app token call bot methods
    assert err.value.response["error"] == "not_allowed_token_type"

    socket_url = (await app.apps_connections_open(app_token=ws.app_token))["url"]
    assert socket_url.startswith(url.replace("http://", "ws://") + "/socket/")
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(socket_url) as sock:
            hello = await sock.receive_json(timeout=5)
            assert hello["type"] == "hello" and hello["connection_info"]["app_id"] == ws.app_id
            assert ws.open_sockets() and ws.socket_connects == 1
            envelope_id = ws.send_envelope("events_api", {"event": {"type": "app_home_opened"}})
            envelope = await sock.receive_json(timeout=5)
            assert envelope == {"envelope_id": envelope_id, "type": "events_api",
                                "payload": {"event": {"type": "app_home_opened"}},
                                "accepts_response_payload": False, "retry_attempt": 0, "retry_reason": ""}
            await sock.send_json({"envelope_id": envelope_id})
            for _ in range(100):
                if ws.socket_ack(envelope_id):
                    break
                await asyncio.sleep(0.02)
            assert ws.socket_ack(envelope_id) == {"envelope_id": envelope_id}
            ws.disconnect_socket()
            assert (await sock.receive_json(timeout=5))["type"] == "disconnect"
            ws.drop_socket(code=1011)
            closing = await sock.receive(timeout=5)
            assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1011
        with pytest.raises(aiohttp.WSServerHandshakeError):  # each address serves one connection
            await session.ws_connect(socket_url)


def test_posts_into_one_channel_are_limited_like_slack() -> None:
    """1 message a second per channel after a burst of 5; past it, 429 ratelimited with Retry-After."""
    now = [1_700_000_000.0]
    ws = SlackWorkspace(token="xoxb-test", clock=lambda: now[0])
    ws.add_user("U1", "ada", "ada@example.com")
    ws.add_channel("C1", "general", ["U1"])
    ws.add_channel("C2", "random", ["U1"])

    def post(channel: str) -> Any:
        return ws.dispatch("chat.postMessage", {"channel": channel, "text": "hi"}, "xoxb-test")

    assert [post("C1").status for _ in range(5)] == [200] * 5
    refused = post("C1")
    assert (refused.status, refused.body["error"], refused.headers["Retry-After"]) == (429, "ratelimited", "1")
    assert len(ws.messages("C1")) == 5 and ws.ratelimited == 1
    assert post("C2").status == 200  # per channel
    now[0] += 0.5
    assert post("C1").headers["Retry-After"] == "1"
    now[0] += 0.5
    assert post("C1").status == 200
    for _ in range(12):  # then one a second
        now[0] += 1.0
        assert post("C1").status == 200
    assert post("C1").status == 429
    assert ws.ratelimited == 3 and ws.ratelimited_calls()[-1] == ("chat.postMessage", "C1")
    assert ws.busiest(10.0) == {"C1": 5 + 1 + 8, "C2": 1} and ws.most_in_window(10.0) == 14
    assert post("U1").status == 200  # a user id posts into their DM, which has its own limit

    ws.limit_posts(None)  # off, for a test that is about something else
    assert all(post("C1").status == 200 for _ in range(20))


async def test_a_lost_answer_still_carries_the_call_out(ws: SlackWorkspace, client: AsyncWebClient) -> None:
    ws.lose_answer_next("chat.postMessage", 1)
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C1", text="stored anyway")
    assert err.value.response.status_code == 500
    ws.lose_answer_next("chat.postMessage", 1, how="drop")
    with pytest.raises(aiohttp.ClientPayloadError):
        await client.chat_postMessage(channel="C1", text="stored too")
    assert [m["text"] for m in ws.messages("C1")] == ["stored anyway", "stored too"]
    assert (await client.chat_postMessage(channel="C1", text="answered"))["ok"]


async def test_reset_makes_a_new_workspace_where_it_is_served(
    ws: SlackWorkspace, client: AsyncWebClient, url: str
) -> None:
    heard: list[str] = []
    ws.subscribe(lambda kind, payload: heard.append(kind))
    await client.chat_postMessage(channel="C1", text="before")
    ws.fail_next("auth.test", 1)
    ws.reset("xoxb-test")
    assert ws.base_url == url  # still served there
    assert ws.messages("C1") == [] and ws.calls == [] and heard == ["message"]
    assert [u["id"] for u in (await client.users_list())["members"]] == ["U0BOT"]
    assert (await client.auth_test())["ok"] is True  # the injected failure is gone
    ws.add_channel("C1", "general", ["U0BOT"])
    await client.chat_postMessage(channel="C1", text="after")
    assert heard == ["message"]  # listeners are dropped too
    assert [m["text"] for m in ws.messages("C1")] == ["after"]
