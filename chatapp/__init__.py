"""chatapp: a terminal chat application over the ``engine`` package."""

__version__ = "0.1.0"
