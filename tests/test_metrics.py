"""GET /metrics: Prometheus text with requests by route and status, latencies, queue, batches, inference."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.main import create_app
from app.testing import StubModel, serve_in_process
from tests.helpers import digit_png


async def scrape(client) -> dict[tuple[str, tuple], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def test_metrics_count_requests_batches_and_inference():
    app = create_app(Settings(), model_factory=lambda _: StubModel())
    async with serve_in_process(app) as client:
        before = await scrape(client)
        for _ in range(3):
            await client.post("/predict", content=digit_png(), headers={"Content-Type": "image/png"})
        await client.post("/predict", content=b"not an image", headers={"Content-Type": "image/png"})
        await client.get("/no/such/page")
        after = await scrape(client)

    def requests(route: str, status: str, method: str = "POST") -> float:
        key = ("mnist_serve_requests_total", (("method", method), ("route", route), ("status", status)))
        return after.get(key, 0) - before.get(key, 0)

    assert requests("/predict", "200") == 3
    assert requests("/predict", "415") == 1
    assert requests("unmatched", "404", "GET") == 1  # raw paths never become labels
    latency = ("mnist_serve_request_duration_seconds_count", (("method", "POST"), ("route", "/predict")))
    assert after[latency] - before.get(latency, 0) == 4

    def grew(name: str) -> float:
        return after[(name, ())] - before.get((name, ()), 0)

    assert grew("mnist_serve_queue_wait_seconds_count") == 3  # one per image that reached the queue
    assert grew("mnist_serve_batch_size_sum") == 3
    assert 1 <= grew("mnist_serve_batch_size_count") == grew("mnist_serve_inference_duration_seconds_count")
    assert ("mnist_serve_queue_depth", ()) in after
    assert ("mnist_serve_request_duration_seconds_bucket") in {name for name, _ in after}
