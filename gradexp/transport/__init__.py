"""HTTP to the server: the batch-source interface (``base``), the aiohttp client with the
protocol's retry policy (``client``), where batches come from (``sources``), the
uploader that sends them (``uploader``) and the files their records name (``run_files``,
``artifacts``, ``parts``).

Runs on an asyncio loop that owns it: the stream thread's, or ``gradexp sync``'s.
"""
