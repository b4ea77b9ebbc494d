"""Framework integrations: ``torch`` (``gradexp.watch`` / ``gradexp.unwatch``).

Each module imports its framework only when one of its functions is called, so that
``import gradexp`` never pays for it.
"""
