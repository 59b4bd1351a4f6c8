"""benchmarks.serve_throughput's report: the ratios it prints from measured cells, and with --gate-only the gate's
alone (no server but the gate pairs ran)."""

import argparse

from benchmarks.serve_throughput import (
    BARE,
    BATCH,
    BATCH_CONCURRENCY,
    FLOOR,
    GATED,
    MODEL_ONLY,
    NAIVE,
    NO_GATE,
    PHOTO,
    PNG,
    SERVE,
    SINGLE,
    Cell,
    report,
)


def cell(*rates: float) -> Cell:
    return Cell(rounds=[{"rps": rate, "p50": 1.0, "p99": 2.0, "non_200": 0} for rate in rates])


def gate_cells() -> dict[tuple[str, int, str], Cell]:
    return {
        (PNG, 64, GATED): cell(90.0, 100.0, 120.0),
        (PNG, 64, NO_GATE): cell(100.0, 100.0, 100.0),
        (BATCH, BATCH_CONCURRENCY, GATED): cell(96.0, 50.0),
        (BATCH, BATCH_CONCURRENCY, NO_GATE): cell(100.0, 50.0),
    }


def test_gate_only_prints_the_gates_ratios_over_pairs_and_nothing_else():
    args = argparse.Namespace(concurrency=[1, 64], rounds=3)
    text = report(gate_cells(), args)
    assert "- c=64 req/s, gated ÷ no gate, 2 fresh pairs: 1.00× (0.90–1.20) (issue 11: ≥ 0.95)" in text
    assert "- /predict/batch images/s, gated ÷ no gate, 2 fresh pairs: 0.98× (0.96–1.00) (issue 11: ≥ 0.95)" in text
    assert "bare" not in text and "naive" not in text and "model alone" not in text


def test_full_report_has_the_issue_9_ratios_and_the_gates():
    args = argparse.Namespace(concurrency=[1, 64], rounds=1)
    cells = gate_cells() | {
        (PNG, 1, SERVE): cell(50.0),
        (PNG, 1, SINGLE): cell(40.0),
        (PNG, 1, BARE): cell(200.0),
        (PNG, 1, NAIVE): cell(25.0),
        (PNG, 64, SERVE): cell(150.0),
        (PNG, 64, SINGLE): cell(50.0),
        (PNG, 64, BARE): cell(300.0),
        (PNG, 64, NAIVE): cell(30.0),
        (PHOTO, 64, SERVE): cell(10.0),
        (PHOTO, 64, SINGLE): cell(8.0),
        (BATCH, BATCH_CONCURRENCY, SERVE): cell(80.0),
        (BATCH, BATCH_CONCURRENCY, MODEL_ONLY): cell(100.0),
    }
    text = report(cells, args)
    assert "- c=64 req/s, mnist-serve ÷ bare: 0.50× (0.50–0.50) (target ≥ 0.60)" in text
    assert "- c=1 req/s, mnist-serve ÷ naive: 2.00× (2.00–2.00) (target ≥ 1.0)" in text
    assert "- /predict/batch images/s ÷ model alone: 0.80× (0.80–0.80) (target ≥ 0.80)" in text
    assert "- c=64 req/s, batching ÷ no batching: 3.00× (3.00–3.00)" in text
    assert "gated ÷ no gate, 2 fresh pairs" in text
    assert "ceiling" not in text  # no floor server measured


def test_the_ceiling_adds_the_floors_time_per_request_to_the_models_per_image():
    args = argparse.Namespace(concurrency=[64], rounds=2)
    cells = {
        # round 1: floor 1,000 req/s (1 ms), model 1,000 images/s (1 ms): ceiling 500 req/s; round 2: 250
        (PNG, 64, FLOOR): cell(1000.0, 400.0),
        (BATCH, BATCH_CONCURRENCY, MODEL_ONLY): cell(1000.0 / 64, 400.0 / 64),
        (PNG, 64, BARE): cell(800.0, 500.0),
        (PNG, 64, SERVE): cell(400.0, 100.0),
        (PNG, 64, NAIVE): cell(10.0, 10.0),
        (PNG, 64, SINGLE): cell(10.0, 10.0),
        (BATCH, BATCH_CONCURRENCY, SERVE): cell(1.0, 1.0),
    }
    text = report(cells, args)
    assert "- c=64 ceiling ÷ bare: 0.51× (0.40–0.62)" in text  # 500 / 800 and 200 / 500
    assert "- c=64 req/s, mnist-serve ÷ that ceiling: 0.65× (0.50–0.80)" in text  # 400 / 500 and 100 / 200
