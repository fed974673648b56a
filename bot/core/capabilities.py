"""What a course platform can do through its API: commands and help are declared against these."""

from __future__ import annotations

from enum import StrEnum


class Capability(StrEnum):
    ENROL = "enrol"
    APPROVAL = "approval"  # enrolments can wait for an approve/block decision
    BLOCK = "block"
    BULK_INVITE = "bulk_invite"
    LESSONS = "lessons"
    COMPLETIONS = "completions"
    CREATE_COURSE = "create_course"
    LINK_BY_ID = "link_by_id"

    @property
    def what(self) -> str:
        """The operation in words, for "<platform> has no API for …"."""
        return _CAPABILITY_WHAT.get(self, self.value.replace("_", " "))


_CAPABILITY_WHAT = {
    Capability.ENROL: "enrolling members",
    Capability.APPROVAL: "approving enrolments (it has no approval step)",
    Capability.BLOCK: "blocking members from a course",
    Capability.BULK_INVITE: "inviting many members at once",
    Capability.LESSONS: "listing a course's lessons",
    Capability.COMPLETIONS: "recording completed lessons",
    Capability.CREATE_COURSE: "creating courses",
    Capability.LINK_BY_ID: "finding members by id",
}
