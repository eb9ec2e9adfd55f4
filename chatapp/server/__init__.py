"""``chatapp serve``: the engine behind an OpenAI-compatible HTTP API (the ``serve`` extra)."""
