#!/usr/bin/env python3
"""A minimal OTLP/HTTP trace receiver for tests.

Listens on 127.0.0.1 (port from --port, 0 = any free port), accepts
`POST /v1/traces` with a protobuf `ExportTraceServiceRequest` (the encoding
the node's exporter uses), and appends one JSON line per span to --out:

    {"trace_id", "span_id", "parent_span_id", "name", "service_instance",
     "start_ns", "end_ns", "attributes": {...}, "links": [{"trace_id", "span_id"}]}

It prints `listening <port>` on stdout once ready, so a test can start it
with port 0 and read the port. Anything that is not a valid request gets a
400 and is not recorded. Needs `opentelemetry-proto` (pip); the test script
installs it.
"""

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

# Larger requests are refused: the node's batches are far smaller.
MAX_BODY_BYTES = 32 * 1024 * 1024


def attr_value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    value = getattr(v, kind)
    if kind in ("array_value", "kvlist_value", "bytes_value"):
        return str(value)
    return value


def spans_of(request):
    for rs in request.resource_spans:
        resource = {a.key: attr_value(a.value) for a in rs.resource.attributes}
        instance = resource.get("service.instance.id")
        for ss in rs.scope_spans:
            for span in ss.spans:
                yield {
                    "trace_id": span.trace_id.hex(),
                    "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex(),
                    "name": span.name,
                    "service_instance": instance,
                    "start_ns": span.start_time_unix_nano,
                    "end_ns": span.end_time_unix_nano,
                    "attributes": {a.key: attr_value(a.value) for a in span.attributes},
                    "links": [
                        {"trace_id": l.trace_id.hex(), "span_id": l.span_id.hex()}
                        for l in span.links
                    ],
                }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = open(args.out, "a", encoding="utf-8")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            length = int(self.headers.get("content-length", "0"))
            if length <= 0 or length > MAX_BODY_BYTES:
                self.send_error(400, "bad content-length")
                return
            body = self.rfile.read(length)
            request = trace_service_pb2.ExportTraceServiceRequest()
            try:
                request.ParseFromString(body)
            except Exception as e:  # noqa: BLE001 - any decode error is a 400
                self.send_error(400, f"not an ExportTraceServiceRequest: {e}")
                return
            for span in spans_of(request):
                out.write(json.dumps(span) + "\n")
            out.flush()
            reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, fmt, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        out.close()


if __name__ == "__main__":
    sys.exit(main())
