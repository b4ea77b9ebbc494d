"""What every client layer shares: settings (``settings``), the config dir and the
credentials file (``credentials``), and the lines gradexp prints (``output``).

Imported by ``init()``, so every module here stays light (no typing, no platformdirs
unless needed).
"""
