"""Training images/s: the pytorch/examples tutorial loop against ours, on the same machine in the same invocation.

    python -m benchmarks.train_throughput                 # CPU or the GPU, defaults below
    python -m benchmarks.train_throughput --images 25600 --rounds 3

The tutorial loop: torchvision MNIST with per-item PIL → ToTensor → Normalize, DataLoader batch 64, Adadelta(lr=1),
fp32. Ours: `training.loop.train_epoch` on in-memory uint8 tensors with the shipped whole-batch augmentation (affine,
elastic, stroke width) and moving average of the weights, batch 128, AdamW,
with mixed precision off and on (`auto`). Rounds alternate between the loops so that noise on a shared machine
hits all of them alike; the median round is reported.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

from mnist_model import MNIST_MEAN, MNIST_STD, Net
from mnist_model.device import DEVICE_CHOICES, resolve_device
from training.augment import Augmentation
from training.data import Split, default_data_dir, load_split
from training.distributed import Runtime
from training.loop import TrainSetup, train_epoch
from training.recipe import build_scheduler, pick_amp_dtype


def tutorial_loop(data_dir: Path, images: int, device: torch.device) -> Callable[[], float]:
    """Return a function that trains the tutorial way on `images` images and returns images/s."""
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    dataset = Subset(datasets.MNIST(str(data_dir), train=True, download=True, transform=transform), range(images))
    cuda = device.type == "cuda"  # the tutorial's CUDA-only loader options (it does not shuffle on the CPU)
    loader = DataLoader(dataset, batch_size=64, num_workers=1 if cuda else 0, pin_memory=cuda, shuffle=cuda)
    model = Net().to(device)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)

    def run() -> float:
        model.train()
        start = time.perf_counter()
        for data, target in loader:
            data, target = data.to(device), target.to(device)
            optimizer.zero_grad()
            loss = F.nll_loss(model(data), target)
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return images / (time.perf_counter() - start)

    return run


def our_loop(data_dir: Path, images: int, device: torch.device, amp: str) -> Callable[[], float]:
    """Return a function that runs `training.loop.train_epoch` on `images` images and returns images/s."""
    split = load_split(data_dir, train=True)
    train_images, train_labels = split.images[:images].to(device), split.labels[:images].to(device)
    model = Net().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    setup = TrainSetup(
        model=model,
        optimizer=optimizer,
        scheduler=build_scheduler(optimizer, 3e-3, 10_000),
        data=Split(train_images, train_labels),
        runtime=Runtime(rank=0, local_rank=0, world_size=1, device=device),
        batch_size=128,
        amp_dtype=pick_amp_dtype(amp, device),
        progress=False,
        augmentation=Augmentation(),  # the shipped recipe: affine, elastic and stroke width
        ema=AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999)),
    )
    generator = torch.Generator(device=device).manual_seed(0)

    def run() -> float:
        return train_epoch(setup, torch.randperm(images), generator=generator).images_per_second

    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=default_data_dir(), metavar="DIR", help="MNIST root")
    parser.add_argument("--images", type=int, default=12_800, metavar="N", help="training images per round")
    parser.add_argument("--rounds", type=int, default=3, metavar="R", help="rounds per loop (median reported)")
    parser.add_argument("--device", default="auto", metavar="DEV", help=DEVICE_CHOICES)
    args = parser.parse_args()
    device = resolve_device(args.device, setting="--device")

    loops = {
        "tutorial (per-item PIL, batch 64, Adadelta, fp32)": tutorial_loop(args.data_dir, args.images, device),
        "ours, fp32 (batch tensors + augmentation, batch 128)": our_loop(args.data_dir, args.images, device, "off"),
        f"ours, --amp auto ({pick_amp_dtype('auto', device)})": our_loop(args.data_dir, args.images, device, "auto"),
    }
    for run in loops.values():  # warm-up: first-call allocations and oneDNN kernel selection
        run()
    results: dict[str, list[float]] = {name: [] for name in loops}
    for _, (name, run) in itertools.product(range(args.rounds), loops.items()):
        results[name].append(run())

    baseline = statistics.median(next(iter(results.values())))
    print(
        f"device: {device} ({torch.get_num_threads()} threads), torch {torch.__version__}, "
        f"{args.images} images x {args.rounds} rounds"
    )
    print("| loop | images/s (median) | vs tutorial |")
    print("| --- | ---: | ---: |")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"| {name} | {median:,.0f} | {median / baseline:.2f}x |")


if __name__ == "__main__":
    main()
