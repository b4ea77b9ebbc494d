"""The ``gradexp-stream`` thread: the one thread per process that writes run files and
drives their upload.

- ``channel``: the only object the caller's thread and the stream thread share for a run;
- ``thread``: starting the thread and handing runs over to it;
- ``runstream``: one run's life on the thread's loop (open, drain, write, flush, fsync);
- ``steps``: the step rules and the framing of records;
- ``executor``: the loop's daemon executor.

The stream sees only the :class:`~gradexp.stream.channel.Channel` and the transport's
interface (``gradexp.transport``), never the SDK's ``Run``.
"""
