"""What the server does, without HTTP: runs, ingest, accounts, history, export, live fan-out."""
