"""The Slack edge: typed payloads, one gate, one error path (middleware.py), every id wired in wiring.py,
and one module of listeners per feature that parse, ack, call a service and render."""
