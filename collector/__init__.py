"""The OTLP collector, in the OpenTelemetry Collector's pipeline shape.

receive (``grpc_receiver``, ``http_receiver``, ``otlp_json``) → validate and
spool (``ingest``, ``otlp_columns.validate_*``, ``spool``) → batch, convert and
write (``writer``, ``otlp_columns.TraceColumns`` / ``MetricColumns``) →
ClickHouse through ``tracestore.store``. ``service.Collector`` wires it together
with the admin port (``admin``, ``stats``) and the side jobs (``rollup_jobs``,
``retention``); ``command`` is ``sidetrace collector``.
"""
