"""Redis keys of course creation and completions."""

from __future__ import annotations

from bot.core.keys import DAY, Key

COURSE_NEW = Key("course-new:{}", DAY, "team:view id of a /course new form -> 'pending' while its course is being "
                 "created, then 'created:<course id>': one form makes at most one course, however often submitted")
COURSE_ATTEMPT = Key("course-new:attempt:{}", DAY, "team:view id of a /course new form -> how the platform looked "
                    "just before its course was sent (CreationAttempt JSON), kept until the create is known to "
                    "have succeeded or failed: a later submission of the form looks for that create's course first")
COURSE_CHOICES = Key("course-new:choices:{}", 600, "locations or price plans (JSON) for the form's pickers, "
                     "cached for the type-ahead menus used when there are more than a static menu holds")
COMPLETION_LOCK = Key("lock:completion:{}:{}", 60, "one completion change at a time per enrolment+lesson")
