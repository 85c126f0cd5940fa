"""A loopback OTLP/HTTP receiver for the OpenTelemetry export tests: a real HTTP server on
127.0.0.1 that decodes the protobuf requests with opentelemetry-proto and keeps them."""

from __future__ import annotations

import gzip
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest, ExportMetricsServiceResponse)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

SIGNALS = {"/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse),
           "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse)}


class Receiver:
    """``with Receiver() as r: ... r.spans(), r.metrics()``; ``r.raw`` keeps the bodies."""

    def __init__(self, fail_status: int | None = None) -> None:
        self.fail_status = fail_status  # answer every request with this status instead
        self.requests: dict[str, list[Any]] = {path: [] for path in SIGNALS}
        self.raw: list[bytes] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = self.headers.get("Content-Encoding")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                request_type, response_type = SIGNALS.get(self.path, (None, None))
                if request_type is None or receiver.fail_status:
                    self.send_response(receiver.fail_status or 404)
                    self.end_headers()
                    return
                message = request_type()
                message.ParseFromString(body)
                with receiver._lock:
                    receiver.requests[self.path].append(message)
                    receiver.raw.append(body)
                data = response_type().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def spans(self) -> list[dict[str, Any]]:
        """Every span received: name, ids, times (ns), kind, status and attributes."""
        out = []
        with self._lock:
            requests = list(self.requests["/v1/traces"])
        for request in requests:
            for resource_spans in request.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        out.append({"name": span.name, "trace_id": span.trace_id.hex(),
                                    "span_id": span.span_id.hex(),
                                    "parent_id": span.parent_span_id.hex(),
                                    "start": span.start_time_unix_nano,
                                    "end": span.end_time_unix_nano, "kind": span.kind,
                                    "status": span.status.code,
                                    "attributes": attributes(span.attributes),
                                    "resource": resource})
        return out

    def metrics(self) -> dict[str, list[tuple[dict[str, Any], float]]]:
        """The last value of each counter's series: name → [(labels, value), ...]."""
        latest: dict[str, dict[tuple, tuple[dict[str, Any], float]]] = {}
        with self._lock:
            requests = list(self.requests["/v1/metrics"])
        for request in requests:
            for resource_metrics in request.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        series = latest.setdefault(metric.name, {})
                        for point in metric.sum.data_points:
                            labels = attributes(point.attributes)
                            value = point.as_double if point.HasField("as_double") else point.as_int
                            series[tuple(sorted(labels.items()))] = (labels, value)
        return {name: list(series.values()) for name, series in latest.items()}


def attributes(items) -> dict[str, Any]:
    return {item.key: _value(item.value) for item in items}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None
