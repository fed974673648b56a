"""Re-exported: the tests serve their fakes with the same helper the shell uses."""

from bot.localserver import ServerThread, free_port

__all__ = ["ServerThread", "free_port"]
