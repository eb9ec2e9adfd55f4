"""Model management for the app: which model to run (``choice``), importing (``importer``),
downloading (``pull``), model cards (``card``) and the embedded default model (``assets``)."""
