"""What a user touches: ``Run`` (``run``), its config and summary (``config``), the
module-level ``init``/``log``/``finish`` (``facade``), process hooks (``hooks``), run ids
(``ids``), ``gradexp.login()`` (``login``), the read client ``gradexp.Api`` (``api``),
notebook support (``jupyter``) and rich values (``values``).

``gradexp/__init__.py`` re-exports the public names lazily; import from there.
"""
