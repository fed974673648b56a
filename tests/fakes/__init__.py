"""Local HTTP servers that behave like the outside services the bot talks to.

They run real HTTP on 127.0.0.1 in a background thread, so the bot's own clients
(httpx for the platforms, slack_sdk's aiohttp client for Slack) go through a real socket.
"""
