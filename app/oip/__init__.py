"""Open Inference Protocol v2 (KServe v2 / Triton HTTP), so that `tritonclient`, KServe and Triton's tools can
call the service: `codec` reads and writes tensors (JSON and the binary tensor data extension), `schemas` holds
the protocol's JSON objects, `mnist` is the served model's signature and its translation into a `Service`
call, `errors` the protocol's one error type. The HTTP routes are `app.routes.oip`.
"""
