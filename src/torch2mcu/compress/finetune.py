"""The fine-tuning loop shared by the schedules: data splits, masked training steps, evaluation."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from torch2mcu.compress.masks import Masks
from torch2mcu.errors import Torch2MCUError


class Split:
    """A labelled split the user brings: (x, y) arrays or tensors, a torch Dataset, or a DataLoader.

    Arrays are shuffled and batched here; a DataLoader is used as it is (its own batch size and
    shuffling); a Dataset is wrapped in a DataLoader.
    """

    def __init__(self, data, what: str, batch_size: int = 128, seed: int = 0):
        self.what = what
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.x = self.y = self.loader = None
        if isinstance(data, (tuple, list)) and len(data) == 2:
            self.x, self.y = (torch.as_tensor(np.asarray(v)) if not isinstance(v, torch.Tensor)
                              else v for v in data)
            if self.x.shape[0] != self.y.shape[0]:
                raise Torch2MCUError(f"{what} data has {self.x.shape[0]} inputs but "
                                     f"{self.y.shape[0]} labels", fix="pass (inputs, labels) "
                                     "with one label per input")
            if self.x.shape[0] == 0:
                raise Torch2MCUError(f"{what} data is empty", fix="pass at least one sample")
            self.x = self.x.float()
            self.y = self.y.long()
        elif isinstance(data, torch.utils.data.DataLoader):
            self.loader = data
        elif isinstance(data, torch.utils.data.Dataset):
            self.loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True,
                                                      generator=torch.Generator().manual_seed(seed))
        else:
            raise Torch2MCUError(f"cannot use {type(data).__name__} as {what} data",
                                 fix="pass (inputs, labels) arrays, a torch Dataset or a "
                                     "DataLoader")

    def __len__(self) -> int:
        return self.x.shape[0] if self.x is not None else len(self.loader.dataset)

    def steps_per_epoch(self) -> int:
        return -(-len(self) // self.batch_size) if self.x is not None else len(self.loader)

    def batches(self, shuffle: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.loader is not None:
            for x, y in self.loader:
                yield x.float(), y.long()
            return
        n = self.x.shape[0]
        order = torch.from_numpy(self.rng.permutation(n)) if shuffle else None
        for s in range(0, n, self.batch_size):
            idx = order[s:s + self.batch_size] if shuffle else slice(s, s + self.batch_size)
            yield self.x[idx], self.y[idx]

    def endless(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            yield from self.batches(shuffle=True)

    def sample_inputs(self, n: int, seed: int = 1) -> np.ndarray:
        """n inputs drawn without replacement (calibration data comes from the training split)."""
        if self.x is not None:
            idx = np.random.default_rng(seed).choice(len(self), min(n, len(self)), replace=False)
            return self.x[torch.from_numpy(np.sort(idx))].numpy().astype(np.float32)
        got, total = [], 0
        for x, _ in self.batches(shuffle=False):
            got.append(x)
            total += x.shape[0]
            if total >= n:
                break
        return torch.cat(got)[:n].numpy().astype(np.float32)


@contextlib.contextmanager
def one_thread():
    """LeNet-sized layers train faster on one thread than on two contending ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def evaluate(model: nn.Module, split: Split) -> float:
    """Top-1 accuracy, 0..1."""
    was_training = model.training
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in split.batches(shuffle=False):
            correct += int((model(x).argmax(1) == y).sum())
            total += y.shape[0]
    model.train(was_training)
    return correct / max(total, 1)


class Trainer:
    """Masked training steps: gradients of pruned weights are zeroed and the masks re-applied
    after every step, so pruned weights stay exact zeros whatever the optimizer does."""

    def __init__(self, model: nn.Module, masks: Masks, train: Split, lr: float, total_steps: int,
                 weight_decay: float = 0.0):
        self.model, self.masks, self.train = model, masks, train
        self.opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, max(total_steps, 1),
                                                                eta_min=lr * 0.02)
        self.loss_fn = nn.CrossEntropyLoss()
        self.batches = train.endless()
        self.step = 0

    def run(self, n: int, before_step: Callable[[int], None] | None = None,
            after_step: Callable[[float], None] | None = None) -> None:
        self.model.train()
        for _ in range(n):
            if before_step:
                before_step(self.step)
            x, y = next(self.batches)
            self.opt.zero_grad()
            loss = self.loss_fn(self.model(x), y)
            loss.backward()
            self.masks.mask_grads()
            self.opt.step()
            self.masks.apply()
            self.sched.step()
            self.step += 1
            if after_step:
                after_step(float(loss.detach()))
        self.model.eval()


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
