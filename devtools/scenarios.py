"""Seeded tenants for tests and benches: the local Nexudus as it looks on a given day.

`busy_day`: the day issue 11 names, whose digest once came to 13,700 characters of block text
in 25 blocks and was refused by Slack: 45 courses with long titles, 400 new enrolments, 60
requests waiting for approval, 300 lessons completed (40 members finishing their course), and
30 members stalled. It is the digest's worst ordinary morning: every list is longer than the
message can hold.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from devtools.fakes.nexudus import NexudusFake

FIRST = ("Ada", "Grace", "Hedy", "Katherine", "Margaret", "Radia", "Barbara", "Frances", "Jean", "Karen", "Shafi",
         "Joan", "Evelyn", "Mary", "Annie", "Dorothy", "Lynn", "Sophie", "Carol", "Elizabeth")
LAST = ("Lovelace", "Hopper", "Lamarr", "Johnson", "Hamilton", "Perlman", "Liskov", "Allen", "Bartik", "Spärck Jones",
        "Goldwasser", "Clarke", "Boyd", "Keller", "Easley", "Vaughan", "Conway", "Wilson", "Shaw", "Feinler")
TOPICS = ("Community Building", "Facilitation", "Inclusive Event Design", "Member Onboarding", "Conflict Resolution",
          "Space Safety", "Workshop Hosting", "Mentoring", "Accessibility", "Sustainable Operations")


@dataclass
class BusyDay:
    fake: NexudusFake
    courses: list[dict[str, Any]]
    new_names: list[str] = field(default_factory=list)  # the 400 who enrolled in the last day
    waiting_names: list[str] = field(default_factory=list)  # the 60 waiting for approval
    finished_names: list[str] = field(default_factory=list)  # the 40 who finished a course today
    stalled_names: list[str] = field(default_factory=list)  # enrolled 14 days ago, not started


def long_title(n: int) -> str:
    topic, other = TOPICS[n % len(TOPICS)], TOPICS[(n * 3 + 1) % len(TOPICS)]
    return (f"Course {n:02d} · Advanced Practitioner Workshop on {topic} and {other} for Coworking Hosts, "
            f"Cohort {2024 + n % 3}")


def busy_day(now: datetime, *, courses: int = 45, new: int = 400, waiting: int = 60, completions: int = 300,
             finishers: int = 40, stalled: int = 30, lessons_per_course: int = 5, seed: int = 11) -> BusyDay:
    """The tenant at `now`: `new` enrolments in the last 23 hours, `waiting` older requests,
    `completions` lessons completed in the last 23 hours (`finishers` of those members finishing),
    and `stalled` members who enrolled 14 days ago and have not started (the digest's last list;
    with it the digest has the 25 blocks of the day the issue describes)."""
    rng = random.Random(seed)
    fake = NexudusFake(page_size_max=1000)
    hub = fake.add_business("Busy Hub")
    host = fake.add_coworker("Hanna Host", "host@busy.example")
    course_rows = [fake.add_course(long_title(n), 1, hub["Id"], host["Id"]) for n in range(courses)]
    lessons = {c["Id"]: [fake.add_lesson(c["Id"], f"Lesson {k}", display_order=k)["Id"]
                         for k in range(1, lessons_per_course + 1)] for c in course_rows}
    day = BusyDay(fake, course_rows)
    counter = iter(range(1_000_000))

    def person() -> tuple[dict[str, Any], str]:
        n = next(counter)
        name = f"{FIRST[n % len(FIRST)]} {LAST[(n // len(FIRST)) % len(LAST)]} {n:04d}"
        return fake.add_coworker(name, f"member{n:04d}@busy.example"), name

    def recently() -> datetime:
        return now - timedelta(seconds=rng.uniform(60, 23 * 3600))

    for n in range(new):
        member, name = person()
        fake.add_enrolment(course_rows[n % courses]["Id"], member["Id"], created_on=recently())
        day.new_names.append(name)
    for n in range(waiting):
        member, name = person()
        fake.add_enrolment(course_rows[(n * 7) % courses]["Id"], member["Id"], approved=False,
                           created_on=now - timedelta(days=2, minutes=n))
        day.waiting_names.append(name)
    for n in range(stalled):
        member, name = person()
        fake.add_enrolment(course_rows[(n * 11) % courses]["Id"], member["Id"],
                           created_on=now - timedelta(days=14, hours=1, minutes=n))
        day.stalled_names.append(name)
    done = 0
    for n in range(finishers):  # enrolled last week, every lesson today
        member, name = person()
        course = course_rows[(n * 5) % courses]["Id"]
        enrolment = fake.add_enrolment(course, member["Id"], created_on=now - timedelta(days=7))
        for lesson in lessons[course]:
            fake.add_completed_lesson(enrolment["Id"], lesson, created_on=recently())
            done += 1
        day.finished_names.append(name)
    while done < completions:  # one lesson today each
        member, _ = person()
        course = course_rows[done % courses]["Id"]
        enrolment = fake.add_enrolment(course, member["Id"], created_on=now - timedelta(days=5))
        fake.add_completed_lesson(enrolment["Id"], lessons[course][0], created_on=recently())
        done += 1
    return day
