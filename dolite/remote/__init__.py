"""Talking to a dolite server over HTTP: the client, the DB-API driver and the value framing.

Importable without APSW, so a thin HTTP-only install works.
"""
