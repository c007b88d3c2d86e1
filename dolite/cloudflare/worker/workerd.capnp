# Runs the dolite storage Worker locally under workerd (the open-source Workers runtime): the
# storage contract alone, as `wrangler deploy` ships it (wrangler.toml).
#
#   DOLITE_SECRET=... workerd serve workerd.capnp \
#       --socket-addr http=127.0.0.1:8787 --directory-path dolite-data=/abs/path/to/data
#
# `dolite cloudflare dev --port P --data DIR` does exactly that. Object data persists in
# DIR (one SQLite file per Durable Object, under a subdirectory named by the uniqueKey).
# Never change the uniqueKey values: object ids are derived from them. workerd-bench.capnp
# repeats this config with the benchmark baseline added: keep the two in step.

using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .doliteWorker),
    # Where Durable Object storage lives; override with --directory-path dolite-data=PATH.
    (name = "dolite-data", disk = (path = "data", writable = true)),
  ],
  sockets = [
    # Override with --socket-addr http=HOST:PORT.
    (name = "http", address = "127.0.0.1:8787", http = (), service = "main"),
  ],
);

const doliteWorker :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "src/worker.js"),
    (name = "http.js", esModule = embed "src/http.js"),
    (name = "records.js", esModule = embed "src/records.js"),
  ],
  compatibilityDate = "2025-04-01",
  durableObjectNamespaces = [
    (className = "DoliteObject", uniqueKey = "dolite-object-8f3c2a61"),
    (className = "DoliteRegistry", uniqueKey = "dolite-registry-5d91e0b7"),
  ],
  durableObjectStorage = (localDisk = "dolite-data"),
  bindings = [
    (name = "OBJECTS", durableObjectNamespace = "DoliteObject"),
    (name = "REGISTRY", durableObjectNamespace = "DoliteRegistry"),
    # The shared secret clients send as `Authorization: Bearer <secret>`.
    (name = "DOLITE_SECRET", fromEnvironment = "DOLITE_SECRET"),
  ],
);
