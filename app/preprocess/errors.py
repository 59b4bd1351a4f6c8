"""How an image fails: `ImageError` while it is processed, `BadItem` as the answer in its place afterwards."""

from __future__ import annotations

from dataclasses import dataclass


class ImageError(ValueError):
    """An upload we cannot turn into a digit. The message is safe to show to the user.

    `status_code`: 400 bad or undecodable image (or no digit in it), 413 too many pixels, 415 not an image
    format we accept.
    """

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class BadItem:
    """An image that cannot be classified, with the status and message its own request would get.

    A value, not an exception: in a batch it takes the image's place in the answer, so that it fails alone.
    Request parsing makes one for an item that is not even image bytes (bad base64, an empty upload).
    """

    status_code: int
    detail: str

    @classmethod
    def from_error(cls, error: ImageError) -> BadItem:
        """The answer for an image whose processing raised `error`."""
        return cls(error.status_code, str(error))
