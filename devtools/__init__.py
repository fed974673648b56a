"""Developer tools: `coursebot shell`, the Slack stand-in, local platform servers and fakes.

No production path imports this package."""
