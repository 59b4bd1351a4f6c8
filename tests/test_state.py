"""training.state: resumable state saved atomically and read with weights_only=True."""

import pytest
import torch

from mnist_model import Net
from training.state import StateError, check_compatible, load_state, save_state, state_path_for


def test_state_path_sits_next_to_the_checkpoint(tmp_path):
    assert state_path_for(tmp_path / "m.safetensors") == tmp_path / "m.state.pt"


def test_round_trip_with_optimizer_and_scheduler(tmp_path):
    model = Net()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(2, 1, 28, 28)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=10)
    state = {
        "epoch": 2,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "history": [{"epoch": 1, "test_accuracy": 0.5}],
        "config": {"seed": 1},
    }
    save_state(tmp_path / "s.pt", state)
    loaded = load_state(tmp_path / "s.pt")
    assert loaded["epoch"] == 2 and loaded["history"] == state["history"]
    fresh = torch.optim.AdamW(Net().parameters(), lr=0.1)
    fresh.load_state_dict(loaded["optimizer"])
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])


def test_objects_that_need_unpickling_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"epoch": 1, "model": {}, "payload": Evil()}, tmp_path / "s.pt")
    with pytest.raises(StateError, match="corrupt or not a training state"):
        load_state(tmp_path / "s.pt")


def test_missing_and_truncated_states_are_clear_errors(tmp_path):
    with pytest.raises(StateError, match="no training state"):
        load_state(tmp_path / "absent.pt")
    save_state(tmp_path / "s.pt", {"epoch": 1, "model": Net().state_dict()})
    data = (tmp_path / "s.pt").read_bytes()
    (tmp_path / "s.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(StateError, match="corrupt"):
        load_state(tmp_path / "s.pt")


def test_changed_settings_are_named():
    check_compatible({"epochs": 3, "seed": 1}, {"epochs": 3, "seed": 1}, ("epochs", "seed"))
    with pytest.raises(StateError, match="--epochs was 3, now 5"):
        check_compatible({"epochs": 3, "seed": 1}, {"epochs": 5, "seed": 1}, ("epochs", "seed"))
