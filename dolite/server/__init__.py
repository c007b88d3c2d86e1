"""The HTTP service: ``dolite serve`` (cli.py), the Starlette app (app.py), tokens
(auth.py) and the OpenAPI description (openapi.py)."""
