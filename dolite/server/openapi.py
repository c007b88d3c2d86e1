"""The OpenAPI 3.0 description of the HTTP API (served at ``GET /openapi.json``)."""

from __future__ import annotations

from dolite.names import MAX_NAME


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict:
    text = {400: "Bad request (JSON, SQL, names, limits)", 401: "Missing or invalid token",
            403: "Token lacks the scope, or SQL refused by the authorizer", 404: "No such database or session",
            408: "The request head or body arrived too slowly",
            409: "Conflict (exists, fenced commit, lost or expired session)", 413: "Body or result too large",
            429: "The token has too many requests or sessions open (Retry-After)",
            503: "Another process holds the write lease, or the object or token stayed busy (Retry-After)"}
    return {str(s): {"description": text[s], **_json(_ref("Error"))} for s in statuses}


NAME = {"name": "name", "in": "path", "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_NAME,
                   "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"}, "example": "shop"}
SESSION = {"name": "session", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}

SCHEMAS = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
    "Value": {"description": "A SQLite value: JSON where exact, else a tagged object", "nullable": True,
              "anyOf": [
                  {"type": "string"}, {"type": "number"}, {"type": "integer"}, {"type": "boolean"},
                  {"type": "object", "required": ["type", "base64"], "additionalProperties": False,
                   "properties": {"type": {"enum": ["blob"]}, "base64": {"type": "string", "format": "byte"}}},
                  {"type": "object", "required": ["type", "value"], "additionalProperties": False,
                   "properties": {"type": {"enum": ["integer", "float"]}, "value": {"type": "string"}}},
              ]},
    "Statement": {"type": "object", "required": ["sql"], "additionalProperties": False,
                  "example": {"sql": "SELECT * FROM t WHERE v > ?", "params": [1]}, "properties": {
        "sql": {"type": "string", "minLength": 1, "description": "Exactly one SQL statement"},
        "params": {"oneOf": [{"type": "array", "items": _ref("Value")},
                             {"type": "object", "additionalProperties": _ref("Value")}]}}},
    "Batch": {"type": "object", "required": ["batch"], "additionalProperties": False, "properties": {
        "batch": {"type": "array", "minItems": 1, "items": _ref("Statement"),
                  "description": "Run as one transaction: all or nothing"}}},
    "Result": {"type": "object", "required": ["columns", "rows", "rows_changed", "last_insert_rowid"],
               "properties": {"columns": {"type": "array", "items": {"type": "string"}},
                              "rows": {"type": "array", "items": {"type": "array", "items": _ref("Value")}},
                              "rows_changed": {"type": "integer"}, "last_insert_rowid": {"type": "integer"},
                              "duration_ms": {"type": "number"}}},
    "PagedStatement": {"type": "object", "required": ["sql", "page_rows"], "additionalProperties": False,
                       "description": "A statement that only reads, answered a page at a time on one snapshot",
                       "properties": {"sql": {"type": "string", "minLength": 1}, "params": {"oneOf": [
                           {"type": "array", "items": _ref("Value")},
                           {"type": "object", "additionalProperties": _ref("Value")}]},
                           "page_rows": {"type": "integer", "minimum": 1, "maximum": 100000,
                                         "description": "Rows of a page at most (a page also stays "
                                         "within max_result_bytes)"}}},
    "Continue": {"type": "object", "required": ["continue"], "additionalProperties": False, "properties": {
        "continue": {"type": "string", "description": "The previous page's next"},
        "page_rows": {"type": "integer", "minimum": 1, "maximum": 100000}}},
    "Page": {"allOf": [_ref("Result"), {"type": "object", "properties": {"next": {
        "type": "string", "description": "Present while rows remain: send {\"continue\": next}"}}}]},
    "Liveness": {"type": "object", "required": ["status"], "properties": {
        "status": {"enum": ["ok"]}, "limits": {"type": "object", "properties": {
            "max_statements": {"type": "integer"}, "max_body_bytes": {"type": "integer"},
            "max_result_bytes": {"type": "integer"}, "max_page_rows": {"type": "integer"}}}}},
    "BatchResult": {"type": "object", "required": ["results"], "properties": {
        "results": {"type": "array", "items": _ref("Result")}, "duration_ms": {"type": "number"}}},
    "DatabaseInfo": {"type": "object", "required": ["name", "version", "size"], "properties": {
        "name": {"type": "string"}, "version": {"type": "integer"}, "size": {"type": "integer"},
        "chunk_size": {"type": "integer"}, "retention": {"type": "number"}, "committed_at": {"type": "number"}}},
}

_NUMBER_OR_NULL = {"type": "number", "nullable": True}
CONSOLE_SCHEMAS = {
    "DatabaseStatus": {"type": "object", "required": ["name", "version", "size", "health"], "properties": {
        "name": {"type": "string"}, "version": {"type": "integer"}, "size": {"type": "integer"},
        "page_size": {"type": "integer"}, "pages": {"type": "integer"}, "chunk_size": {"type": "integer"},
        "chunks": {"type": "integer"}, "stored_chunk_versions": {"type": "integer"},
        "retained_versions": {"type": "integer"}, "oldest_version": {"type": "integer"},
        "retention_seconds": {"type": "number"}, "committed_at": {"type": "number"},
        "lease": {"type": "object", "nullable": True, "properties": {
            "owner": {"type": "string"}, "epoch": {"type": "integer"}, "expires": {"type": "number"}}},
        "health": {"type": "string", "enum": ["ok", "corrupt", "unchecked"],
                   "description": "From the last check run by this process"},
        "last_check": {"type": "object", "nullable": True},
        "backup_lag": {"type": "object", "nullable": True, "description": "null: no backup target configured",
                       "properties": {"target": {"type": "string"}, "backed_up_version": {"type": "integer",
                                      "nullable": True}, "versions_behind": {"type": "integer"},
                                      "seconds_behind": {"type": "number"}, "lagging": {"type": "boolean"},
                                      "error": {"type": "string"}}}}},
    "Versions": {"type": "object", "properties": {
        "name": {"type": "string"}, "current": {"type": "integer"},
        "versions": {"type": "array", "description": "Newest first", "items": {"type": "object", "properties": {
            "version": {"type": "integer"}, "time": {"type": "number"},
            "size": {"type": "integer", "nullable": True}, "chunks_written": {"type": "integer", "nullable": True}}}}}},
    "CheckReport": {"type": "object", "required": ["ok"], "properties": {
        "name": {"type": "string"}, "ok": {"type": "boolean"},
        "integrity": {"type": "array", "items": {"type": "string"}},
        "chunks_checked": {"type": "integer"}, "records_checked": {"type": "integer"},
        "corrupt": {"type": "array", "items": {"type": "string"}},
        "damaged": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "integer"}}}}},
    "Restore": {"type": "object", "required": ["version"], "additionalProperties": False, "properties": {
        "version": {"type": "integer", "minimum": 1, "description": "A retained version (see /versions)"},
        "into": {**NAME["schema"], "description": "Fork into this new database (admin on it too) "
                 "instead of restoring in place"}}},
    "Restored": {"type": "object", "properties": {
        "restored": {"type": "string"}, "from_version": {"type": "integer"}, "into": {"type": "string"},
        "version": {"type": "integer"}, "size": {"type": "integer"}}},
    "Stats": {"type": "object", "properties": {
        "interval": {"type": "number"}, "database": {"type": "string", "nullable": True},
        "samples": {"type": "array", "description": "Oldest first; rates and means over each interval",
                    "items": {"type": "object", "properties": {
                        "t": {"type": "number"}, "requests_per_s": {"type": "number"}, "request_ms": _NUMBER_OR_NULL,
                        "commits_per_s": {"type": "number"}, "commit_ms": _NUMBER_OR_NULL,
                        "chunks_written_per_s": {"type": "number"}, "bytes_written_per_s": {"type": "number"},
                        "request_ms_max": {"type": "number"}}}}}},
    "Health": {"type": "object", "properties": {
        "status": {"type": "string", "enum": ["ok", "degraded"]}, "storage": {"type": "string"},
        "corrupt": {"type": "array", "items": {"type": "string"}},
        "backup": {"type": "object", "nullable": True, "properties": {
            "target": {"type": "string"}, "lagging": {"type": "array", "items": {"type": "string"}},
            "error": {"type": "string"}}},
        "objects_loaded": {"type": "integer"}, "sessions_open": {"type": "integer"}}},
}


def _console_paths() -> dict:
    ok = lambda text, schema, status="200": {status: {"description": text, **_json(_ref(schema))}}  # noqa: E731
    return {
        "/v1/databases/{name}/status": {"parameters": [NAME], "get": {"operationId": "databaseStatus", "responses": {
            **ok("Facts of the database: pages, versions, lease holder, health", "DatabaseStatus"),
            **_errors(400, 401, 403, 404, 503)}}},
        "/v1/databases/{name}/versions": {"parameters": [NAME], "get": {"operationId": "databaseVersions",
            "responses": {**ok("Retained versions (restorable), newest first", "Versions"),
                          **_errors(400, 401, 403, 404, 503)}}},
        "/v1/databases/{name}/check": {"parameters": [NAME], "post": {"operationId": "checkDatabase",
            "description": "Admin. Verify every stored record and chunk version, then PRAGMA integrity_check.",
            "responses": {**ok("The report (ok false: damage found)", "CheckReport"),
                          **_errors(400, 401, 403, 404, 503)}}},
        "/v1/databases/{name}/restore": {"parameters": [NAME], "post": {"operationId": "restoreDatabase",
            "description": "Admin. Restore in place to a retained version (a new version on top), or fork it.",
            "requestBody": {"required": True, **_json(_ref("Restore"))},
            "responses": {**ok("Restored in place", "Restored"), **ok("Forked into a new database", "Restored", "201"),
                          **_errors(400, 401, 403, 404, 409, 413, 503)}}},
        "/v1/stats": {"parameters": [{"name": "database", "in": "query", "required": False,
                                      "schema": NAME["schema"]}], "get": {"operationId": "stats",
            "responses": {**ok("The ring buffer of samples (read scope on the database, if named)", "Stats"),
                          **_errors(400, 401, 403)}}},
        "/v1/health": {"get": {"operationId": "health", "responses": {
            **ok("Storage reachable, databases found corrupt, gauges", "Health"), **_errors(401)}}},
    }


_QUERY_BODY = {"required": True, **_json({"oneOf": [_ref("Statement"), _ref("Batch")]})}
_QUERY_OK = {"200": {"description": "Statement result, or one result per batch entry",
                     **_json({"oneOf": [_ref("Result"), _ref("BatchResult")]})}}
_PAGED_QUERY_BODY = {"required": True, **_json({"oneOf": [_ref("Statement"), _ref("Batch"), _ref("PagedStatement"),
                                                          _ref("Continue")]})}
_PAGED_QUERY_OK = {"200": {"description": "Statement result, one result per batch entry, or a page",
                           **_json({"oneOf": [_ref("Result"), _ref("BatchResult"), _ref("Page")]})}}


def _links(source: str, *operations: str, session: bool = False) -> dict:
    params = {"name": source}
    if session:
        params["session"] = "$response.body#/session"
    return {"links": {op: {"operationId": op, "parameters": params} for op in operations}}


_DB_LINKS = _links("$response.body#/name", "query", "databaseInfo", "openSession", "exportDatabase",
                   "deleteDatabase")
_SESSION_LINKS = _links("$request.path.name", "sessionQuery", "commitSession", "rollbackSession", session=True)


_CHANGESET_PARAMS = [
    {"name": "replica", "in": "query", "required": True, "schema": {"type": "string", "maxLength": 128}},
    {"name": "seq", "in": "query", "required": True, "schema": {"type": "integer", "minimum": 1}},
    {"name": "on_conflict", "in": "query", "required": True,
     "schema": {"type": "string", "enum": ["abort", "theirs", "ours"]}},
    {"name": "committed_at", "in": "query", "required": False, "schema": {"type": "number"},
     "description": "The local commit time (Unix seconds), for the replica lag metric"},
]


def _cluster_paths() -> dict:
    """Clusters (docs/SERVICE.md "Clusters"): scopes on the cluster name."""
    keyed = {"type": "object", "required": ["key", "sql"], "properties": {
        "key": {"description": "routing key: a string, an integer or a blob"}, "sql": {"type": "string"},
        "params": {"oneOf": [{"type": "array"}, {"type": "object"}]}}}
    body = {"required": True, **_json({"oneOf": [keyed, {
        "type": "object", "required": ["batch"], "properties": {"batch": {"type": "array", "items": keyed}}}, {
        "type": "object", "required": ["all", "sql"], "properties": {
            "all": {"type": "boolean", "enum": [True]}, "sql": {"type": "string"},
            "params": {"oneOf": [{"type": "array"}, {"type": "object"}]}}}]})}
    info = {"description": "Shards (slots, version, size, in_doubt), decisions on record, 2PC stats",
            **_json({"type": "object"})}
    return {
        "/v1/clusters": {
            "get": {"operationId": "listClusters", "responses": {
                "200": {"description": "Clusters this token may read", **_json({
                    "type": "object", "properties": {"clusters": {"type": "array", "items": {"type": "string"}}}})},
                **_errors(401)}},
            "post": {"operationId": "createCluster", "requestBody": {"required": True, **_json({
                "type": "object", "required": ["name", "shards"], "additionalProperties": False,
                "properties": {"name": NAME["schema"], "shards": {"type": "integer", "minimum": 1, "maximum": 1024}}})},
                "responses": {"201": info, **_errors(400, 401, 403, 409, 413, 503)}}},
        "/v1/clusters/{name}": {"parameters": [NAME], "get": {
            "operationId": "clusterInfo", "responses": {"200": info, **_errors(400, 401, 403, 404, 503)}}},
        "/v1/clusters/{name}/query": {"parameters": [NAME], "post": {
            "operationId": "clusterQuery", "description": "A statement routed by key, a batch as one "
            "transaction atomic across shards, or every shard (all)", "requestBody": body,
            "responses": {**_QUERY_OK, **_errors(400, 401, 403, 404, 408, 409, 413, 429, 503)}}},
    }


def spec() -> dict:
    """The OpenAPI document."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "dolite", "version": "1",
                 "description": "SQLite databases as Durable-Object-style actors. Every error is "
                                '{"error": {"code", "message"}} and changes nothing.'},
        "components": {"schemas": {**SCHEMAS, **CONSOLE_SCHEMAS},
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {"get": {"operationId": "healthz", "security": [], "responses": {
                "200": {"description": "Alive, and the limits clients size their requests by",
                        **_json(_ref("Liveness"))}}}},
            "/metrics": {"get": {"operationId": "metrics", "responses": {
                "200": {"description": "Prometheus metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
                **_errors(401, 403)}}},
            "/v1/databases": {
                "get": {"operationId": "listDatabases", "responses": {
                    "200": {"description": "Databases this token may read", **_json({
                        "type": "object", "properties": {"databases": {"type": "array", "items": {"type": "string"}}}})},
                    **_errors(401)}},
                "post": {"operationId": "createDatabase", "requestBody": {"required": True, **_json({
                    "type": "object", "required": ["name"], "additionalProperties": False,
                    "properties": {"name": NAME["schema"]}})},
                    "responses": {"201": {"description": "Created", **_json(_ref("DatabaseInfo")), **_DB_LINKS},
                                  **_errors(400, 401, 403, 409, 413, 503)}}},
            "/v1/databases/{name}": {
                "parameters": [NAME],
                "get": {"operationId": "databaseInfo", "responses": {
                    "200": {"description": "Head of the database", **_json(_ref("DatabaseInfo"))},
                    **_errors(400, 401, 403, 404, 503)}},
                "delete": {"operationId": "deleteDatabase", "responses": {
                    "200": {"description": "Deleted", **_json({"type": "object"})},
                    **_errors(400, 401, 403, 404, 503)}}},
            "/v1/databases/{name}/query": {"parameters": [NAME], "post": {
                "operationId": "query", "requestBody": _PAGED_QUERY_BODY,
                "responses": {**_PAGED_QUERY_OK, **_errors(400, 401, 403, 404, 408, 409, 413, 429, 503)}}},
            "/v1/databases/{name}/export": {"parameters": [NAME], "get": {
                "operationId": "exportDatabase", "responses": {
                    "200": {"description": "The database as a .sqlite file",
                            "content": {"application/vnd.sqlite3": {"schema": {"type": "string", "format": "binary"}}}},
                    **_errors(400, 401, 403, 404)}}},
            "/v1/databases/{name}/import": {"parameters": [NAME, {
                "name": "replace", "in": "query", "required": False, "schema": {"type": "boolean"}}], "post": {
                "operationId": "importDatabase",
                "requestBody": {"required": True, "content": {"application/octet-stream": {
                    "schema": {"type": "string", "format": "binary"}}}},
                "responses": {"201": {"description": "Imported", **_json(_ref("DatabaseInfo")), **_DB_LINKS},
                              **_errors(400, 401, 403, 409, 413, 503)}}},
            "/v1/databases/{name}/changesets": {"parameters": [NAME, *_CHANGESET_PARAMS], "post": {
                "operationId": "pushChangeset", "description": "Apply a local replica's transaction (writer "
                "scope), exactly once per (replica, seq), conflicting rows decided by on_conflict",
                "requestBody": {"required": True, "content": {"application/octet-stream": {
                    "schema": {"type": "string", "format": "binary"}}}},
                "responses": {"200": {"description": "Applied (or applied before: applied=false)", **_json({
                    "type": "object", "properties": {"applied": {"type": "boolean"}, "version": {"type": "integer"},
                                                     "conflicts": {"type": "array", "items": {"type": "object"}}}})},
                              "409": {"description": "The policy aborted: nothing stored; the error also holds "
                                      "conflicts (table, key, kind, reason, stored, ours)", **_json(_ref("Error"))},
                              **_errors(400, 401, 403, 404, 413, 429, 503)}}},
            "/v1/databases/{name}/sessions": {"parameters": [NAME, {
                "name": "mode", "in": "query", "required": False,
                "schema": {"type": "string", "enum": ["read", "write"]}}], "post": {
                "operationId": "openSession", "responses": {
                    "201": {"description": "An open transaction: a write session holds the database until it "
                            "ends; a read session reads a pinned version", **_json({
                                "type": "object", "properties": {
                                    "session": {"type": "string"}, "read_only": {"type": "boolean"},
                                    "idle_timeout": {"type": "number"}, "lifetime": {"type": "number"}}}),
                            **_SESSION_LINKS},
                    **_errors(400, 401, 403, 404, 429, 503)}}},
            "/v1/databases/{name}/sessions/{session}/query": {"parameters": [NAME, SESSION], "post": {
                "operationId": "sessionQuery", "requestBody": _QUERY_BODY,
                "responses": {**_QUERY_OK, **_errors(400, 401, 403, 404, 408, 409, 413, 429, 503)}}},
            "/v1/databases/{name}/sessions/{session}/commit": {"parameters": [NAME, SESSION], "post": {
                "operationId": "commitSession", "responses": {
                    "200": {"description": "Committed durably", **_json({"type": "object"})},
                    **_errors(400, 401, 403, 404, 409, 503)}}},
            "/v1/databases/{name}/sessions/{session}/rollback": {"parameters": [NAME, SESSION], "post": {
                "operationId": "rollbackSession", "responses": {
                    "200": {"description": "Rolled back", **_json({"type": "object"})},
                    **_errors(400, 401, 403, 404, 503)}}},
            **_console_paths(),
            **_cluster_paths(),
        },
    }
