"""The README stays true: its commands parse, its settings table matches `Settings`, its examples really run."""

import json
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from app.config import Settings
from benchmarks.perf_analyzer import find_perf_analyzer
from tests.helpers import REPO
from training.export import parse_args as export_args
from training.run import parse_args

README = (REPO / "README.md").read_text()
CODE_LINES = [line.strip() for block in re.findall(r"```bash\n(.*?)```", README, re.S) for line in block.splitlines()]


def commands(prefix: str) -> list[str]:
    return [
        shlex.join(shlex.split(line, comments=True)) if "$(" not in line else line.split("  #")[0].strip()
        for line in CODE_LINES
        if line.startswith(prefix)
    ]


def test_readme_starts_with_the_two_commands_a_newcomer_needs():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S).group(1).splitlines()
    assert [line.split()[:2] for line in first_block] == [["make", "serve"], ["make", "test"]]
    targets = re.findall(r"^([a-z-]+):", (REPO / "Makefile").read_text(), re.M)
    for command in commands("make "):
        assert command.split()[1] in targets


@pytest.mark.parametrize(
    ("prefixes", "module", "parse", "at_least"),
    [
        (("python -m training.run", "torchrun"), "training.run", parse_args, 5),
        (("python -m training.export",), "training.export", export_args, 1),
    ],
    ids=["training.run", "training.export"],
)
def test_every_training_command_parses(prefixes, module, parse, at_least):
    lines = [line for prefix in prefixes for line in commands(prefix)]
    assert len(lines) >= at_least
    for line in lines:
        argv = shlex.split(line, comments=True)
        parse(argv[argv.index(module) + 1 :])  # exits 2 on a flag that does not exist


GATE_STEPS = ("python -m benchmarks.renders.export", "MNIST_SERVE_NUM_THREADS=1 python -m app.gate.fit")


def make_gate_dry_run(data: str) -> list[str]:
    """The export and fit commands `make gate` would run with its renders in `data`, as one line each."""
    run = subprocess.run(
        ["make", "-n", "gate", "WORKERS=2", f"DATA={data}"], cwd=REPO, capture_output=True, text=True, check=True
    )
    lines = re.sub(r" *\\\n\s*", " ", run.stdout).replace(".venv/bin/", "").splitlines()
    return [line.replace(data, "data") for line in lines if line.startswith(GATE_STEPS)]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_the_gate_commands_are_what_make_gate_runs_and_exports_happen_once(tmp_path):
    documented = [line for line in CODE_LINES if line.startswith(GATE_STEPS)]
    assert len(documented) == 5 and "make gate" in commands("make ")
    assert make_gate_dry_run(str(tmp_path)) == documented  # four exports into an empty folder, then the fit
    for line in documented[:4]:
        (tmp_path / line.split("--out data/")[1].split()[0]).touch()
    assert make_gate_dry_run(str(tmp_path)) == documented[4:]  # exported already: only the fit


def test_settings_table_lists_every_variable_with_its_default():
    rows = dict(re.findall(r"^\| `(MNIST_SERVE_[A-Z_]+)` \| ([^|]+) \|", README, re.M))
    fields = Settings.model_fields
    assert set(rows) == {f"MNIST_SERVE_{name.upper()}" for name in fields}
    for name, field in fields.items():
        if isinstance(field.default, int | float | str) and not isinstance(field.default, bool):
            assert rows[f"MNIST_SERVE_{name.upper()}"].strip() == f"`{field.default}`", name


def test_files_the_readme_names_exist():
    # not after a "/": /v2/models/mnist is an endpoint, not a file
    named = set(re.findall(r"(?<![\w/])(examples/[\w.]+|docker-compose[\w.]*\.yml|models/[\w.]+)", README))
    for path in named - {"models/mnist_cnn.state.pt"}:  # the resume state is written by training, not shipped
        assert (REPO / path).is_file(), path


LAYOUT_PACKAGES = ("app", "training", "mnist_model", "benchmarks")


def layout_paths() -> set[str]:
    """The path that starts each line of the README's layout block (`app/main.py`, `app/routes/`, ...)."""
    section = README.split("## Project layout", 1)[1]
    block = re.search(r"```\n(.*?)```", section, re.S).group(1)
    return {line.split()[0] for line in block.splitlines() if line.strip()}


def test_layout_lists_every_module():
    listed = layout_paths()
    missing = []
    for package in LAYOUT_PACKAGES:
        for module in sorted((REPO / package).rglob("*.py")):
            path = module.relative_to(REPO).as_posix()
            folder = f"{module.parent.relative_to(REPO).as_posix()}/"  # names a package's __init__.py too
            if path not in listed and not (module.name == "__init__.py" and folder in listed):
                missing.append(path)
    assert not missing, f"add one line each to the README's Project layout: {missing}"


def test_layout_lists_only_what_exists():
    named = [path for path in layout_paths() if path.startswith((*LAYOUT_PACKAGES, "tests", ".ci"))]
    assert len(named) > 40
    assert [path for path in named if not (REPO / path).exists()] == []


@pytest.fixture(scope="module")
def server(live_server: str) -> str:
    """The real service (`uvicorn app.main:app`) with the shipped model, on a free loopback port."""
    return live_server


def run_curl(command: str, server: str) -> dict:
    """A README curl line against the test server; its JSON answer."""
    result = subprocess.run(
        ["bash", "-c", command.replace("http://localhost:8000", server)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(result.stdout)


def python_example(marker: str) -> str:
    """The README's Python block that mentions `marker`."""
    [snippet] = [block for block in re.findall(r"```python\n(.*?)```", README, re.S) if marker in block]
    return snippet


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_examples_answer_the_right_digits(server):
    answers = [run_curl(command, server) for command in commands("curl ") if "/v2/" not in command]
    assert [answer.get("digit") for answer in answers[:3]] == [7, 2, 1]  # seven.png, photo.jpg, canvas.png
    batch = answers[3]["predictions"]
    assert [item.get("digit") for item in batch] == [7, 2, None]
    assert batch[2]["status_code"] == 415 and batch[2]["index"] == 2


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_open_inference_protocol_curl_examples_answer(server):
    metadata, answer = [run_curl(command, server) for command in commands("curl ") if "/v2/" in command]
    assert metadata["name"] == "mnist" and [t["name"] for t in metadata["inputs"]] == ["pixels", "images"]
    assert answer["model_version"] == metadata["versions"][0]
    assert {output["name"]: output["data"] for output in answer["outputs"]}["digit"] == [7]  # seven.png


@pytest.mark.slow
def test_python_example_runs(server, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    exec(python_example("httpx").replace("http://localhost:8000", server), {})  # our own README, not user input
    digit, confidence = capsys.readouterr().out.split()
    assert digit == "7" and float(confidence) > 0.99


@pytest.mark.slow
def test_tritonclient_example_runs(server, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    exec(python_example("tritonclient.http").replace("localhost:8000", server.removeprefix("http://")), {})
    assert capsys.readouterr().out.splitlines() == ["[7]", "[2 1]"]  # seven.png; photo.jpg and canvas.png


@pytest.mark.slow
def test_grpc_example_runs(live_service, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    exec(python_example("tritonclient.grpc").replace("localhost:8081", live_service.grpc_address), {})
    assert capsys.readouterr().out.splitlines() == ["[7]"]  # seven.png


@pytest.mark.slow
@pytest.mark.skipif(find_perf_analyzer() is None, reason="no perf_analyzer: run .ci/perf-analyzer-setup.sh")
def test_perf_analyzer_commands_run(live_service, tmp_path):
    """The README's perf_analyzer lines against the real service, in short measurement windows."""
    [write] = commands("python -m benchmarks.perf_analyzer --write-data")
    subprocess.run([sys.executable, *shlex.split(write)[1:-1], str(tmp_path / "pa")], cwd=REPO, check=True)
    runs = [line.split("  #")[0] for line in CODE_LINES if line.startswith(".tools/perf-analyzer/perf_analyzer")]
    assert len(runs) == 2
    addresses = {
        "localhost:8000": live_service.url.removeprefix("http://"),
        "localhost:8081": live_service.grpc_address,
    }
    for line in runs:
        for documented, real in addresses.items():
            line = line.replace(documented, real)
        argv = [find_perf_analyzer(), *shlex.split(line.replace("pa/", f"{tmp_path}/pa/"))[1:]]
        quick = [
            "--measurement-mode",
            "count_windows",
            "--measurement-request-count",
            "20",
            "--stability-percentage",
            "100",
        ]
        done = subprocess.run([*argv, *quick], capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0 and "error" not in (done.stdout + done.stderr).lower(), done.stdout + done.stderr
        assert "Throughput:" in done.stdout
