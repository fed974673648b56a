"""Every Block Kit message the bot sends is built here: the one renderer.

Escaping is by construction (bot.render.mrkdwn): every builder takes `Mrkdwn`, which only
`md()` (the bot's template, untrusted values made inert) and the trusted constructors
(`mention()` from ids, `when()`, `link()`, `code()`, `join()`) make, so a member called
`Eve <!channel>` pings nobody, a course title cannot carry a disguised link, and a name with a
line break or a bidi override stays on its own line. Size is by construction too
(bot.render.message): `Message.pages()` keeps every message within Slack's limits.
"""

from __future__ import annotations

import re

from bot.core.directory import DirectoryError
from bot.core.errors import (
    CourseAmbiguous,
    CourseNotFound,
    MemberAmbiguous,
    NotAllowed,
    SlackUser,
    UserFacingError,
)
from bot.core.grammar import CommandSpec, ParseError
from bot.core.models import AccessState, Course, Member, Visibility
from bot.platforms.base import PlatformError
from bot.render.blocks import (
    FIELD_MAX,
    SECTION_MAX,
    Block,
    actions,
    block_chars,
    button,
    check_texts,
    confirm,
    context,
    divider,
    fields,
    header,
    input_block,
    option,
    plain_text,
    section,
)
from bot.render.message import (
    MESSAGE_BLOCKS,
    MESSAGE_CHARS,
    SLACK_MESSAGE_CHARS,
    VIEW_BLOCKS,
    File,
    Message,
    Where,
    home,
    modal,
)
from bot.render.mrkdwn import (
    EMPTY,
    NAME_MAX,
    Mrkdwn,
    Plain,
    channel,
    clip_mrkdwn,
    code,
    csv_cell,
    email,
    esc,
    file_title,
    inline,
    join,
    lines,
    link,
    md,
    mention,
    name,
    one_line,
    plain,
    sentence,
    usergroup,
    when,
)

BLOCKS_MAX = MESSAGE_BLOCKS
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

__all__ = [
    "BLOCKS_MAX", "EMPTY", "FIELD_MAX", "MESSAGE_BLOCKS", "MESSAGE_CHARS", "NAME_MAX", "SECTION_MAX",
    "SLACK_MESSAGE_CHARS", "VIEW_BLOCKS", "Block", "File", "Message", "Mrkdwn", "Plain", "Where", "actions",
    "block_chars", "button", "channel", "check_texts", "clip_mrkdwn", "code", "confirm", "context", "csv_cell",
    "divider", "email", "esc", "fields", "file_title", "header", "home", "inline", "input_block", "join", "lines",
    "link", "md", "mention", "modal", "name", "one_line", "option", "plain", "plain_text", "section",
    "sections_of_lines", "sentence", "simple", "usergroup", "when",
]


def sections_of_lines(items: list[Mrkdwn], *, budget: int | None = None,
                      more: str = "…and {} more.") -> list[Block]:
    """Lines packed into as few sections as fit. With a `budget` of blocks, the lines past it are
    counted in a last line (`more`, with the count); without one, all of them are kept and
    `Message.pages()` carries what does not fit into the next message."""
    blocks: list[Block] = []
    chunk: list[Mrkdwn] = []
    size = 0
    for index, line in enumerate(items):
        if chunk and size + len(line) + 1 > SECTION_MAX:
            if budget is not None and len(blocks) == budget - 1:
                blocks.append(context(md(more, len(items) - index)))
                return blocks
            blocks.append(section(lines(chunk)))
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
    if chunk:
        blocks.append(section(lines(chunk)))
    return blocks


def simple(text: Mrkdwn) -> Message:
    return Message(text=text, blocks=[section(text)])


# ---- help ---------------------------------------------------------------------------------

def help_message(specs: list[CommandSpec], *, platform: str, is_manager: bool, notes: list[str]) -> Message:
    items = [md("{}  {}", code(f"/course {spec.usage}"), spec.summary) for spec in specs]
    blocks = [
        section(md("*coursebot* runs course enrolment on *{}* from Slack.", platform)),
        *sections_of_lines(items),
        context(md("`<course>` is a course id or a unique part of its title (quote it if it has spaces). "
                   "`<member>` is an email, an @mention or a platform id.")),
    ]
    if not is_manager:
        blocks.append(context(md("You see the read-only commands; course managers can also change enrolments.")))
    blocks.extend(context(sentence(note)) for note in notes)
    return Message(text=md("coursebot: what you can do with /course"), blocks=blocks)


VISIBILITY_ICON = {
    Visibility.PUBLIC: ":globe_with_meridians:",
    Visibility.HIDDEN: ":see_no_evil:",
    Visibility.PRIVATE: ":lock:",
    Visibility.PAID: ":moneybag:",
    Visibility.UNKNOWN: ":grey_question:",
}


def icon(visibility: Visibility) -> Mrkdwn:
    return md(VISIBILITY_ICON[visibility])


def course_label(course: Course) -> Mrkdwn:
    return md("*{}* (id {})", course.title, course.id)


def member_label(member: Member, *, with_email: bool = True) -> Mrkdwn:
    if with_email and member.email:
        return md("*{}* ({})", member.label, email(member.email))
    return md("*{}*", member.label)


STATE_TEXT = {
    AccessState.APPROVED: ":white_check_mark: approved",
    AccessState.PENDING: ":hourglass_flowing_sand: waiting for approval",
    AccessState.BLOCKED: ":no_entry: blocked",
}


def state_text(state: AccessState) -> Mrkdwn:
    return md(STATE_TEXT[state])


# ---- errors -------------------------------------------------------------------------------

def user_text(error: UserFacingError) -> Mrkdwn:
    """A user-facing error: its template is the bot's words, its values untrusted (a `SlackUser`
    value is shown as a mention)."""
    values = {key: mention(value) if isinstance(value, SlackUser) else email(value) if _EMAIL.match(value) else value
              for key, value in error.values.items()}
    return md(error.template, **values)


def parse_error_message(error: ParseError) -> Message:
    return simple(md(":warning: {}", sentence(error.message)))


def user_error_message(error: UserFacingError) -> Message:
    text = md(":warning: {}", user_text(error))
    blocks = [section(text)]
    if isinstance(error, CourseAmbiguous):
        items = [md("• {} · {}", course_label(c), c.visibility.value) for c in error.candidates[:20]]
        blocks += [*sections_of_lines(items, budget=10),
                   context(md("Nothing was changed. Use the course id, or more of the title."))]
    elif isinstance(error, CourseNotFound):
        hint = md("See `/course courses` for the list.")
        if error.suggestions:
            hint = md("Did you mean {}? {}", join(course_label(c) for c in error.suggestions), hint)
        blocks.append(context(md("Nothing was changed. {}", hint)))
    elif isinstance(error, MemberAmbiguous):
        items = [md("• {} (id {})", member_label(m), m.id) for m in error.candidates[:20]]
        blocks += [*sections_of_lines(items, budget=10), context(md("Nothing was changed. Use the member's id."))]
    return Message(text=text, blocks=blocks)


def platform_error_message(error: PlatformError) -> Message:
    text = md(":x: {}", sentence(error.message))
    if not error.retryable:
        return simple(text)
    return Message(text=text, blocks=[section(text), context(md("Nothing was changed. Try again shortly."))])


def refusal_message(reason: str) -> Message:
    return simple(md(":no_entry_sign: {}", sentence(reason)))


EXPECTED_ERRORS = (UserFacingError, DirectoryError, PlatformError)


def error_message(exc: Exception) -> Message:
    """What the user reads when a command or a click fails: one mapping for every surface."""
    if isinstance(exc, NotAllowed):
        return simple(md(":no_entry_sign: {}", user_text(exc)))
    if isinstance(exc, UserFacingError):
        return user_error_message(exc)
    if isinstance(exc, DirectoryError):
        return simple(md(":warning: {}", sentence(exc.message)))
    if isinstance(exc, PlatformError):
        return platform_error_message(exc)
    return internal_error_message()


def internal_error_message() -> Message:
    return simple(md(":x: Something went wrong on my side and nothing was changed. The error is in the bot's log."))
