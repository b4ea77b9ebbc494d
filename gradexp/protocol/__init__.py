"""What the SDK and the server agree on: wire constants, naming rules, the value codec and
the run-file format (``docs/protocol.md``, ``docs/runfile.md``).

The bottom layer: it imports the standard library and orjson only, so both sides (and
every client layer) can load it. Import the modules themselves (``gradexp.protocol.wire``,
``.names``, ``.values``, ``.captured``, ``.runfile``); this package re-exports nothing.
"""
