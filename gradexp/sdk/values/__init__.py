"""Rich values: what ``log()`` does with something other than a plain scalar.

- ``normalize``: ``log()``'s slow path on the caller's thread (flatten, convert, capture);
- ``base``: what every captured value is built on (``CapturingValue``, ``HostArray``,
  the buffer pool);
- ``binning``: the stream-side histogram and statistics of a numpy array;
- ``device``: the same, reduced on a tensor's own device;
- ``histogram``, ``tensor``, ``image`` (with ``png``): the public value types;
- ``capture``: bare arrays and tensors -> histograms (or scalars, or images).

Only ``normalize`` is loaded without numpy; it imports the rest when an array arrives.
"""
