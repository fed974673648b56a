"""coursebot: Slack chat-ops for course enrolment on Nexudus Spaces and MeltingSpot."""

__version__ = "0.2.0"
