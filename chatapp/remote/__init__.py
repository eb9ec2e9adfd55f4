"""Remote models: chat with a model on any OpenAI-compatible server as with a local one."""
