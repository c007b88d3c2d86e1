# The benchmark build of the dolite Worker, for local workerd only (`dolite cloudflare bench`):
# workerd.capnp plus NativeSqlObject, which runs SQL natively behind the benchmark-only route
# POST /v1/native/{name}/sql (src/bench.js). Never deployed: wrangler.toml ships the storage
# contract alone. Keep the storage part in step with workerd.capnp.

using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .benchWorker),
    (name = "dolite-data", disk = (path = "data", writable = true)),
  ],
  sockets = [
    (name = "http", address = "127.0.0.1:8787", http = (), service = "main"),
  ],
);

const benchWorker :Workerd.Worker = (
  modules = [
    (name = "bench.js", esModule = embed "src/bench.js"),
    (name = "worker.js", esModule = embed "src/worker.js"),
    (name = "http.js", esModule = embed "src/http.js"),
    (name = "records.js", esModule = embed "src/records.js"),
  ],
  compatibilityDate = "2025-04-01",
  durableObjectNamespaces = [
    (className = "DoliteObject", uniqueKey = "dolite-object-8f3c2a61"),
    (className = "DoliteRegistry", uniqueKey = "dolite-registry-5d91e0b7"),
    (className = "NativeSqlObject", uniqueKey = "dolite-native-sql-3b7e9c42", enableSql = true),
  ],
  durableObjectStorage = (localDisk = "dolite-data"),
  bindings = [
    (name = "OBJECTS", durableObjectNamespace = "DoliteObject"),
    (name = "REGISTRY", durableObjectNamespace = "DoliteRegistry"),
    (name = "NATIVE", durableObjectNamespace = "NativeSqlObject"),
    (name = "DOLITE_SECRET", fromEnvironment = "DOLITE_SECRET"),
  ],
);
