"""Redis keys of the platform read cache (`bot.platforms.cache`).

Every key starts with the platform's name, so a Redis that once served another platform never
answers for this one. Values are JSON. Lifetimes are short: each is the longest a manager should
wait to see a change made outside the bot (the bot's own changes drop what they affect at once).
"""

from __future__ import annotations

from bot.core.keys import DAY, Key

GENERATION = Key("cache:{}:gen:{}", DAY, "platform, group ('courses' or 'enrolments') -> a counter the bot's own "
                 "writes increment; cached values and shared reads are named with it, so a write makes every value "
                 "cached (or being read) before it unused at once, even one a slow read stores after the write")
COURSES = Key("cache:{}:{}:courses", 300, "platform, courses generation -> every course (JSON list), for resolving "
              "a course by title; a title no course matches reads the list again (see `drop_cached_courses`)")
COURSE = Key("cache:{}:{}:course:{}", 300, "platform, courses generation, course id -> that course (JSON), for "
             "resolving a course by id; only courses that exist are kept")
LESSONS = Key("cache:{}:lessons:{}", 300, "platform, course id -> its lessons (JSON list); the bot writes no lessons")
LESSON_TYPES = Key("cache:{}:lesson-types:{}", 300, "platform, course id -> its lessons with unlock and completion "
                   "types (JSON list), for /course lessons")
SECTIONS = Key("cache:{}:sections:{}", 300, "platform, course id -> its sections (JSON list)")
LOCATIONS = Key("cache:{}:locations", 900, "platform -> locations (JSON list) for the /course new form")
PRICE_PLANS = Key("cache:{}:price-plans", 900, "platform -> price plans (JSON list) for the /course new form")
MEMBER_BY_EMAIL = Key("cache:{}:member-email:{}", 300, "platform, lower-cased email -> the member found with it "
                      "(JSON); only matches are kept, so a member added on the platform is found at once")
MEMBER = Key("cache:{}:member:{}", 300, "platform, member id -> that member (JSON); only members that exist")
