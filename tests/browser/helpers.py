"""What the page's tests import: browser window sizes, what an open page recorded, MNIST test digits."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}


@dataclass
class Problems:
    """What went wrong in a page: console errors, exceptions, failed requests, HTTP errors (as text)."""

    seen: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """Let a test expect a problem (e.g. the 415 of a text upload, which Chromium logs as a console error)."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [text for text in self.seen if not any(pattern.search(text) for pattern in self.allowed)]


@dataclass
class PredictTraffic:
    """Requests to /predict as the page sent them: how many, and the most ever in flight at once."""

    sent: int = 0
    in_flight: int = 0
    most_in_flight: int = 0

    def started(self) -> None:
        self.sent += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)

    def ended(self) -> None:
        self.in_flight -= 1


@dataclass
class Visit:
    """An open page with what it recorded: `problems` (see `Problems`), `predict_traffic` (see `PredictTraffic`)."""

    page: object  # playwright.sync_api.Page
    problems: Problems
    predict_traffic: PredictTraffic


@dataclass(frozen=True)
class MnistDigit:
    """One MNIST test image (28×28 uint8, white on black) and its label."""

    index: int
    label: int
    pixels: np.ndarray
