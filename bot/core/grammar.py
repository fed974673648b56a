"""The `/course` grammar: each subcommand declared once, and the parser that reads it.

A declaration names the subcommand, its arguments, who may run it and its help text;
`help` is generated from these, and the handler checks `manager_only` (and `deciders`) in one place.
Parsing is pure (no I/O), so a malformed command is answered inside the 3 s ack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from bot.core.capabilities import Capability


class RefKind(StrEnum):
    EMAIL = "email"
    USER = "user"  # a Slack user id from an @mention
    CHANNEL = "channel"
    USERGROUP = "usergroup"
    ID = "id"  # a platform id (digits, or a UUID)
    NAME = "name"  # anything else: an unresolved @name or free text


@dataclass(frozen=True)
class Ref:
    kind: RefKind
    value: str
    label: str = ""

    def __str__(self) -> str:
        if self.kind is RefKind.USER:
            return f"<@{self.value}>"
        if self.kind is RefKind.CHANNEL:
            return f"<#{self.value}>"
        if self.kind is RefKind.USERGROUP:
            return f"<!subteam^{self.value}>"
        return self.label or self.value

    @property
    def is_member(self) -> bool:
        return self.kind in (RefKind.EMAIL, RefKind.USER, RefKind.ID)

    @property
    def is_group(self) -> bool:
        return self.kind in (RefKind.CHANNEL, RefKind.USERGROUP)


class ParseError(Exception):
    """The text does not fit the grammar; the message says what would."""

    def __init__(self, message: str, spec: CommandSpec | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.spec = spec


@dataclass(frozen=True)
class CommandSpec:
    name: str
    usage: str
    summary: str
    manager_only: bool = False
    capability: Capability | None = None
    flags: frozenset[str] = frozenset()
    example: str = ""
    deciders: bool = False  # with manager_only: course approvers too (the decision path checks the course)
    unsupported: str = ""  # what to say, with {platform}, where the capability is missing (else the generic line)


@dataclass(frozen=True)
class Invocation:
    spec: CommandSpec
    course: str | None = None
    member: Ref | None = None
    lesson: str | None = None
    targets: tuple[Ref, ...] = ()
    flags: frozenset[str] = frozenset()
    text: str = ""
    mode: str = ""  # approvers: "none" (clear); autoapprove: "domain", "group" or "off"
    value: str = ""  # autoapprove: the domain or the user-group id; quorum: the number

    @property
    def name(self) -> str:
        return self.spec.name


_NO_RULES = ("{platform} has no approval step: its sign-ups never wait for anyone, so there are no approvers, "
             "auto-approve rules or quorums to set there. Nothing was changed.")

COMMANDS: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in (
        CommandSpec("help", "help", "Show what you can do with /course."),
        CommandSpec("courses", "courses", "List the courses with their visibility and enrolment counts."),
        CommandSpec(
            "status", "status <course> [member]", "Enrolment counts for a course, or one member's progress in it.",
            example='status "Founders Circle" @ada',
        ),
        CommandSpec(
            "enrol", "enrol <course> <member> [--pending]",
            "Enrol a member (approved, unless --pending leaves it waiting for approval).",
            manager_only=True, capability=Capability.ENROL, flags=frozenset({"pending"}),
            example='enrol "Founders Circle" ada@example.com',
        ),
        CommandSpec("approve", "approve <course> <member>", "Approve a member's enrolment.",
                    manager_only=True, deciders=True, capability=Capability.APPROVAL),
        CommandSpec("block", "block <course> <member>", "Block a member from a course.",
                    manager_only=True, deciders=True, capability=Capability.BLOCK),
        CommandSpec("unblock", "unblock <course> <member>", "Lift a block; the member's approval stays as it was.",
                    manager_only=True, deciders=True, capability=Capability.BLOCK),
        CommandSpec(
            "invite", "invite [course] [members…] [--no-email]",
            "Invite many people at once: emails, @users, #channels, @user-groups. Runs as a background job "
            "with a progress bar and a report. Without members, opens a form. On MeltingSpot, --no-email "
            "invites them without MeltingSpot's invitation email.",
            manager_only=True, capability=Capability.BULK_INVITE, flags=frozenset({"no-email"}),
            example='invite "Community Onboarding" #new-members @designers bob@example.com',
        ),
        CommandSpec("pending", "pending [course]", "Enrolments waiting for approval, oldest first, with buttons.",
                    manager_only=True, deciders=True, capability=Capability.APPROVAL),
        CommandSpec("digest", "digest", "Preview today's digest (only you see it).", manager_only=True),
        CommandSpec("lessons", "lessons <course>", "A course's sections and lessons in order, with their ids.",
                    capability=Capability.LESSONS),
        CommandSpec("new", "new", "Create a course (opens a form).", manager_only=True,
                    capability=Capability.CREATE_COURSE),
        CommandSpec(
            "complete", "complete <course> <member> <lesson>  |  complete <course> <lesson> <members…>",
            "Record that a member (or everyone in a #channel, @group or list) completed a lesson.",
            manager_only=True, capability=Capability.COMPLETIONS,
            example='complete "Makerspace Safety" "Laser cutter" #workshop-march',
        ),
        CommandSpec("uncomplete", "uncomplete <course> <member> <lesson>", "Remove one completed lesson.",
                    manager_only=True, capability=Capability.COMPLETIONS),
        CommandSpec(
            "link", "link @user <email or platform id>",
            "Record which platform member a Slack user is, when their emails differ.",
            manager_only=True, example="link @ada ada.l@studio.example",
        ),
        CommandSpec(
            "approvers", "approvers <course> [@user…|@user-group…|none]",
            "Who decides this course's requests besides the managers. No names: shows them; none: managers only.",
            manager_only=True, capability=Capability.APPROVAL, unsupported=_NO_RULES,
            example='approvers "Founders Circle" @hanna @founders-team',
        ),
        CommandSpec(
            "autoapprove", "autoapprove <course|all> domain <domain> | group @user-group | off [--preview]",
            "Approve waiting requests by rule at each sync: members with an email at a domain, or in a Slack "
            "user group. --preview counts what matches now and changes nothing.",
            manager_only=True, capability=Capability.APPROVAL, flags=frozenset({"preview"}), unsupported=_NO_RULES,
            example='autoapprove "Founders Circle" domain partner.example --preview',
        ),
        CommandSpec(
            "quorum", "quorum <course> <1|2|3>",
            "How many different approvers must approve a request before it is approved; one Block decides.",
            manager_only=True, capability=Capability.APPROVAL, unsupported=_NO_RULES,
            example='quorum "Founders Circle" 2',
        ),
        CommandSpec("rules", "rules", "Every course's approvers, auto-approve rules and quorum.",
                    manager_only=True, capability=Capability.APPROVAL, unsupported=_NO_RULES),
    )
}

ALIASES = {"enroll": "enrol", "course": "courses", "list": "courses", "?": "help"}

_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'"})
_TOKEN = re.compile(r'"([^"]*)"|\'([^\']*)\'|(<[^>]*>)|(\S+)')
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_SLACK_ID = re.compile(r"^[A-Z0-9]{2,}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def tokenize(text: str) -> list[tuple[str, bool]]:
    """Split on spaces, keeping quoted phrases and Slack's <...> escapes whole.

    Returns (token, was_quoted) pairs. An unclosed quote is a ParseError.
    """
    text = text.translate(_QUOTES).strip()
    if text.count('"') % 2 or (text.count("'") % 2 and re.search(r"(^|\s)'", text)):
        raise ParseError("A quote is not closed. Put a course title with spaces in double quotes: \"Founders Circle\".")
    tokens: list[tuple[str, bool]] = []
    for match in _TOKEN.finditer(text):
        double, single, angle, bare = match.groups()
        if double is not None or single is not None:
            tokens.append(((double if double is not None else single or "").strip(), True))
        else:
            tokens.append((angle or bare, False))
    return tokens


def parse_ref(token: str) -> Ref:
    """Read a member or group reference in any form Slack may send it."""
    if token.startswith("<") and token.endswith(">"):
        inner = token[1:-1]
        body, _, label = inner.partition("|")
        if body.startswith("@") and _SLACK_ID.match(body[1:]):
            return Ref(RefKind.USER, body[1:], label)
        if body.startswith("#") and _SLACK_ID.match(body[1:]):
            return Ref(RefKind.CHANNEL, body[1:], label)
        if body.startswith("!subteam^") and _SLACK_ID.match(body.removeprefix("!subteam^")):
            return Ref(RefKind.USERGROUP, body.removeprefix("!subteam^"), label)
        if body.startswith("mailto:"):
            return Ref(RefKind.EMAIL, body.removeprefix("mailto:").strip().lower(), label)
        return Ref(RefKind.NAME, label or body)
    cleaned = token.strip().rstrip(",;")
    if _EMAIL.match(cleaned):
        return Ref(RefKind.EMAIL, cleaned.lower())
    if cleaned.isdigit() or _UUID.match(cleaned):
        return Ref(RefKind.ID, cleaned)
    return Ref(RefKind.NAME, cleaned)


def _split_flags(tokens: list[tuple[str, bool]], spec: CommandSpec) -> tuple[list[tuple[str, bool]], frozenset[str]]:
    flags: set[str] = set()
    rest: list[tuple[str, bool]] = []
    for token, quoted in tokens:
        if not quoted and token.startswith("--"):
            flag = token[2:].lower()
            if flag not in spec.flags:
                allowed = ", ".join(f"--{f}" for f in sorted(spec.flags)) or "none"
                raise ParseError(f"`{spec.name}` has no option `{token}` (options: {allowed}).", spec)
            flags.add(flag)
        else:
            rest.append((token, quoted))
    return rest, frozenset(flags)


def _member_ref(token: str, spec: CommandSpec) -> Ref:
    ref = parse_ref(token)
    if ref.is_member:
        return ref
    if ref.is_group:
        raise ParseError(f"`{spec.name}` takes one member; to add a whole channel or group use `/course invite`.", spec)
    raise ParseError(
        f"I can't tell who `{ref.value}` is. Give an email, an @mention picked from Slack's list, or a platform id.",
        spec,
    )


def parse(text: str) -> Invocation:
    """Turn the text after `/course` into an Invocation, or raise ParseError."""
    tokens = tokenize(text)
    if not tokens:
        return Invocation(COMMANDS["help"])
    word = tokens[0][0].lower()
    name = ALIASES.get(word, word)
    spec = COMMANDS.get(name)
    if spec is None:
        raise ParseError(f"I don't know `{tokens[0][0][:40]}`. Try `/course help` for what you can do.")
    args, flags = _split_flags(tokens[1:], spec)
    values = [token for token, _ in args]

    def need(count: int, optional: int = 0) -> None:
        if not count <= len(values) <= count + optional:
            raise ParseError(f"Usage: `/course {spec.usage}`" + (f"  e.g. `/course {spec.example}`"
                                                                     if spec.example else ""), spec)

    if name in ("help", "courses", "digest", "new", "rules"):
        need(0)
        return Invocation(spec, flags=flags, text=text)
    if name == "status":
        need(1, 1)
        member = _member_ref(values[1], spec) if len(values) > 1 else None
        return Invocation(spec, course=values[0], member=member, flags=flags, text=text)
    if name in ("enrol", "approve", "block", "unblock"):
        need(2)
        return Invocation(spec, course=values[0], member=_member_ref(values[1], spec), flags=flags, text=text)
    if name == "link":
        need(2)
        user = parse_ref(values[0])
        if user.kind is not RefKind.USER:
            raise ParseError("Usage: `/course link @user <email or platform id>`; pick the @user from Slack's list.",
                             spec)
        target = parse_ref(values[1])
        if target.kind not in (RefKind.EMAIL, RefKind.ID):
            raise ParseError("The second part of `link` is the member's email or platform id on the course platform.",
                             spec)
        return Invocation(spec, member=user, targets=(target,), flags=flags, text=text)
    if name == "pending":
        need(0, 1)
        return Invocation(spec, course=values[0] if values else None, flags=flags, text=text)
    if name == "lessons":
        need(1)
        return Invocation(spec, course=values[0], flags=flags, text=text)
    if name == "invite":  # with no course or no people, the runner opens a form
        return Invocation(spec, course=values[0] if values else None, targets=_targets(values[1:], spec),
                          flags=flags, text=text)
    if name == "uncomplete":
        need(3)
        return Invocation(spec, course=values[0], member=_member_ref(values[1], spec), lesson=values[2],
                          flags=flags, text=text)
    if name == "complete":
        if len(values) < 3:
            raise ParseError(f"Usage: `/course {spec.usage}`  e.g. `/course {spec.example}`", spec)
        second, rest = parse_ref(values[1]), [parse_ref(v) for v in values[2:]]
        single = len(values) == 3 and second.is_member and not rest[0].is_group and not (
            rest[0].kind in (RefKind.EMAIL, RefKind.USER) and second.kind is RefKind.ID
        )
        if single:
            return Invocation(spec, course=values[0], member=second, lesson=values[2], flags=flags, text=text)
        targets = _targets(values[2:], spec)
        if not targets:  # e.g. `complete onboarding welcome ""`: nobody named
            raise ParseError(f"Usage: `/course {spec.usage}`  e.g. `/course {spec.example}`", spec)
        return Invocation(spec, course=values[0], lesson=values[1], targets=targets, flags=flags, text=text)
    if name == "approvers":
        return _approvers(args, spec, flags, text)
    if name == "autoapprove":
        return _autoapprove(args, spec, flags, text)
    if name == "quorum":
        need(2)
        if values[1] not in ("1", "2", "3"):
            raise ParseError("A quorum is 1, 2 or 3 approvals: `/course quorum <course> 2`.", spec)
        return Invocation(spec, course=values[0], value=values[1], flags=flags, text=text)
    raise ParseError(f"Usage: `/course {spec.usage}`", spec)


def _approvers(args: list[tuple[str, bool]], spec: CommandSpec, flags: frozenset[str], text: str) -> Invocation:
    """`approvers <course>`, `approvers <course> none`, `approvers <course> @user… @user-group…`."""
    if not args:
        raise ParseError(f"Usage: `/course {spec.usage}`  e.g. `/course {spec.example}`", spec)
    course, rest = args[0][0], [token for token, _ in args[1:]]
    if not rest:
        return Invocation(spec, course=course, flags=flags, text=text)
    if [r.lower() for r in rest] == ["none"]:
        return Invocation(spec, course=course, mode="none", flags=flags, text=text)
    if "none" in (r.lower() for r in rest):
        raise ParseError("`none` clears the approvers and goes alone: `/course approvers <course> none`. "
                         "Nothing was changed.", spec)
    refs = _targets(rest, spec, what="approvers")
    wrong = [r for r in refs if r.kind not in (RefKind.USER, RefKind.USERGROUP)]
    if wrong:
        raise ParseError(f"Approvers are @users and @user-groups picked from Slack's list, not `{str(wrong[0])[:40]}`; "
                         "`none` clears them. Nothing was changed.", spec)
    return Invocation(spec, course=course, targets=refs, flags=flags, text=text)


_DOMAIN = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$")
_LINK = re.compile(r"^<(?:https?://)?([^|/>]+)[^|>]*(?:\|[^>]*)?>$")


def parse_domain(token: str) -> str | None:
    """An email domain, lower-cased, as typed (`trusted.example`, `@trusted.example`) or as Slack may
    have turned it into a link (`<http://trusted.example|trusted.example>`); None if it is not one."""
    token = token.strip()
    link = _LINK.match(token)
    if link:
        token = link.group(1)
    domain = token.lower().removeprefix("@").rstrip(".")
    return domain if _DOMAIN.match(domain) else None


def _autoapprove(args: list[tuple[str, bool]], spec: CommandSpec, flags: frozenset[str], text: str) -> Invocation:
    """`autoapprove <course|all> domain <domain>`, `… group @user-group`, `… off`.

    An unquoted `all` means every course (`course` is None); `"all"` in quotes is a course title."""
    usage = f"Usage: `/course {spec.usage}`  e.g. `/course {spec.example}`"
    if len(args) < 2:
        raise ParseError(usage, spec)
    (first, quoted), mode = args[0], args[1][0].lower()
    course: str | None = None if first.lower() == "all" and not quoted else first  # None: every course
    rest = [token for token, _ in args[2:]]
    if mode == "off":
        if rest:
            raise ParseError(usage, spec)
        if "preview" in flags:
            raise ParseError("`--preview` goes with `domain` or `group`; `off` simply removes the rules.", spec)
        return Invocation(spec, course=course, mode=mode, flags=flags, text=text)
    if mode == "domain":
        if len(rest) != 1:
            raise ParseError("Give one email domain, e.g. `/course autoapprove all domain partner.example`.", spec)
        domain = parse_domain(rest[0])
        if domain is None:
            raise ParseError(f"`{rest[0][:60]}` is not an email domain (like `partner.example`). Nothing was changed.",
                             spec)
        return Invocation(spec, course=course, mode=mode, value=domain, flags=flags, text=text)
    if mode == "group":
        ref = parse_ref(rest[0]) if len(rest) == 1 else None
        if ref is None or ref.kind is not RefKind.USERGROUP:
            raise ParseError("Give one @user-group picked from Slack's list, e.g. "
                             "`/course autoapprove all group @staff`. Nothing was changed.", spec)
        return Invocation(spec, course=course, mode=mode, value=ref.value, targets=(ref,), flags=flags, text=text)
    raise ParseError(usage, spec)


def _targets(values: list[str], spec: CommandSpec, *, what: str = "") -> tuple[Ref, ...]:
    """People and groups for a bulk command; anything unreadable stops it before it starts."""
    refs: list[Ref] = []
    for value in values:
        for piece in re.split(r"[,;]", value) if not value.startswith("<") else [value]:
            if piece.strip():
                refs.append(parse_ref(piece.strip()))
    unknown = [r.value for r in refs if r.kind is RefKind.NAME]
    if unknown:
        shown = ", ".join(f"`{u[:40]}`" for u in unknown[:5])
        if what == "approvers":
            raise ParseError(
                f"I can't tell who {shown} {'is' if len(unknown) == 1 else 'are'}. Give @users and @user-groups "
                "picked from Slack's list; nothing was changed.", spec)
        raise ParseError(
            f"I can't tell who {shown} {'is' if len(unknown) == 1 else 'are'}. Give emails, @users, #channels "
            "or @user-groups picked from Slack's list; nothing was started.", spec)
    return tuple(dict.fromkeys(refs))


def visible_commands(*, is_manager: bool, capabilities: frozenset[Capability],
                     is_approver: bool = False) -> list[CommandSpec]:
    return [
        spec for spec in COMMANDS.values()
        if (is_manager or not spec.manager_only or (is_approver and spec.deciders))
        and (spec.capability is None or spec.capability in capabilities)
    ]
