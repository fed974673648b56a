"""How fast does the local Nexudus fake seed and filter a large tenant?

The benches that drive thousands of members (bulk invite, the busy digest) lean on the fake
answering filtered reads from its indexes, not by scanning every table. This seeds 20,000
coworkers, each enrolled in one course of 10 lessons with every lesson completed (200,000
completions), then times three reads through its HTTP API: one member's completions, one
member's enrolment, and page 150 of every completion. tests/test_fake_nexudus.py checks the same
reads for correctness on a smaller tenant.

    .venv/bin/python -m bench.fake_scale [--members 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import httpx

    from devtools.fakes.nexudus import NexudusFake
    from devtools.servers import ServerThread

    fake = NexudusFake()
    started = time.perf_counter()
    course = fake.add_course("Big")
    lessons = [fake.add_lesson(course["Id"], f"L{i}", i)["Id"] for i in range(10)]
    coworkers, members = [], []
    for i in range(args.members):
        coworkers.append(fake.add_coworker(f"P{i}", f"p{i}@x.com")["Id"])
        members.append(fake.add_enrolment(course["Id"], coworkers[-1])["Id"])
    for member_id in members:
        for lesson_id in lessons:
            fake.add_completed_lesson(member_id, lesson_id)
    seeded = time.perf_counter() - started
    print(f"seeded {args.members:,} coworkers and {len(fake.coursecompletedlessons):,} completions in {seeded:.2f} s")

    reads = {
        "one member's completions": ("/api/content/coursecompletedlessons",
                                     {"CourseCompletedLesson_CourseMember": members[len(members) // 2], "size": 100}),
        "one member's enrolment": ("/api/content/coursemembers",
                                   {"CourseMember_Course": course["Id"], "CourseMember_Coworker": coworkers[5],
                                    "size": 1000}),
        "page 150 of every completion": ("/api/content/coursecompletedlessons", {"size": 1000, "page": 150}),
    }
    timings: dict[str, list[float]] = {name: [] for name in reads}
    with ServerThread(fake.app) as url, httpx.Client(base_url=url, timeout=30) as client:
        token = client.post("/api/token", data={"grant_type": "password", "username": fake.username,
                                                "password": fake.password}).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        client.get("/api/spaces/coworkers", params={"size": 1})  # a warm connection: the server is measured
        for _ in range(args.rounds):
            for name, (path, params) in reads.items():
                started = time.perf_counter()
                client.get(path, params=params).raise_for_status()
                timings[name].append(time.perf_counter() - started)
    for name, values in timings.items():
        print(f"{name}: median {statistics.median(values) * 1000:.1f} ms, max {max(values) * 1000:.1f} ms "
              f"over {args.rounds} rounds")


if __name__ == "__main__":
    main()
