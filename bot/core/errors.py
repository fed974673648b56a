"""Errors a service raises for the user to read: each says what went wrong and how to fix it."""

from __future__ import annotations

from collections.abc import Callable

from bot.core.models import Course, Member


class SlackUser(str):
    """A value of a `UserFacingError` that is a Slack user id: the renderer shows it as a mention."""

    __slots__ = ()


class UserFacingError(Exception):
    """Nothing was changed; the message says why and how to fix it.

    `template` is the bot's own words (mrkdwn formatting, no control sequences: the renderer
    escapes them); `values` are untrusted strings (names, emails, what the user typed) that the
    renderer makes inert before filling them in, so a service never has to know how Slack escapes
    text. A `SlackUser` value becomes a mention.
    """

    def __init__(self, template: str, **values: str) -> None:
        super().__init__(template.format(**values))
        self.template = template
        self.values = values

    def text(self, escape: Callable[[str], str]) -> str:
        return self.template.format(**{name: escape(value) for name, value in self.values.items()})


class CourseNotFound(UserFacingError):
    def __init__(self, query: str, suggestions: list[Course]) -> None:
        super().__init__("No course matches “{query}”.", query=query)
        self.query = query
        self.suggestions = suggestions


class CourseAmbiguous(UserFacingError):
    def __init__(self, query: str, candidates: list[Course]) -> None:
        super().__init__("“{query}” matches " + str(len(candidates)) + " courses.", query=query)
        self.query = query
        self.candidates = candidates


class MemberNotFound(UserFacingError):
    """`hint` says how to fix it; most often: the Slack email differs from the platform's."""

    def __init__(self, who: str, hint: str, **values: str) -> None:
        super().__init__(f"I could not find {who} on the course platform. {hint}", **values)


class MemberAmbiguous(UserFacingError):
    def __init__(self, who: str, candidates: list[Member], **values: str) -> None:
        super().__init__(f"{who} matches several members.", **values)
        self.candidates = candidates


class NotAllowed(UserFacingError):
    pass
