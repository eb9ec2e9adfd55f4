"""Small widgets of the chat app; the logic lives in ``chatapp.core.session``."""
