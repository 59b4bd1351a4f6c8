"""The one error the Open Inference Protocol layer raises: a request that breaks the protocol or the model's
signature, with the HTTP status that says so (400 malformed, 404 unknown model or version, 413 over a limit).

Plain Python on purpose: the codec raises it while parsing untrusted bytes and must not import an HTTP
framework. `app.errors` renders it as `{"error": "..."}` with its status.
"""

from __future__ import annotations


class ProtocolError(ValueError):
    """The request cannot be served as sent; the message is safe to show and says what to send instead."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code

    @property
    def headers(self) -> dict[str, str]:
        """No `Retry-After`: sending the same request again cannot help."""
        return {}
