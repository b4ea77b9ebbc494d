"""The gradexp server: ``gradexp server`` (an aiohttp app over SQL and an object store).

The folders are its layers; a module imports only from its own layer or the ones below:

- ``app.py`` (assembly: state, middlewares, routes, startup and cleanup) and ``cli.py``
  (the ``gradexp server`` commands): the top;
- ``http/``: routes, middleware, sessions, pages; the only layer that speaks HTTP;
- ``settings.py``: ``ServerSettings``, every environment variable read once;
- ``domain/``: runs, ingest and validation, accounts, history, rollups, export, live
  fan-out; it raises the errors of ``domain/errors.py``, which ``http/`` maps to replies;
- ``storage/``: the database, its schema and migrations, the object store.

``static/`` holds the web UI that ``http/`` serves.
"""
