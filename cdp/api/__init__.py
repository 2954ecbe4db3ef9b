"""The HTTP API for department apps: profiles, lookups, stages, change feed, privacy.

Start it with ``cdp api`` or build the ASGI app with :func:`cdp.api.app.create_app`.
See ``docs/api.md`` for the endpoints, authentication, field-level views and errors.
This package's ``__init__`` imports nothing heavy: :mod:`cdp.api.models` is shared
with the Python client (:mod:`cdp.client`), which must not need FastAPI.
"""
