"""SQL on the page store: the APSW VFS, in-process locks and the PEP 249 driver."""
