"""Live fan-out: one database poll per process feeds every live stream of that process.

- ``hub.py``: :class:`~gradexp.server.domain.live.hub.LiveHub`, the process's poller: what
  its streams watch, one read per interval, rows fanned out in memory, shared keepalives,
  credential re-checks, the per-user cap.
- ``mailbox.py``: what a stream receives (:class:`RowsEvent`, :class:`RunEvent`) and its
  bounded mailbox (:class:`Subscriber`).
- ``reads.py``: the database reads of one interval, and a stream's own catch-up reads.
- ``credentials.py``: the re-check of every open stream's key or session in one read.
- ``watchers.py``: which runs are watched right now, across processes (``live_watches``).
"""
