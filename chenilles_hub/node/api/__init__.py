"""The operator's surface: the local HTTP API (``http``), its OpenAPI description
(``openapi``), the views and requests it serves over a node (``operations``), Prometheus
metrics (``metrics``) and the client the CLI uses (``client``).

The API depends on a running node only through :class:`~.service.NodeService`, so it never
imports the runtime that serves it.
"""
