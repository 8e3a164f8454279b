"""Training a built-in model on a data set, with a cache so a second run starts fast."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from torch2mcu.data import Dataset
from torch2mcu.ui import note, progress_task

CACHE = Path(os.environ.get("TORCH2MCU_CACHE", Path.home() / ".cache" / "torch2mcu"))


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 1000) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, x.shape[0], batch):
            correct += int((model(torch.from_numpy(x[s:s + batch])).argmax(1).numpy()
                            == y[s:s + batch]).sum())
    return correct / max(x.shape[0], 1)


def train(model: nn.Module, data: Dataset, epochs: int = 8, lr: float = 2e-3, batch: int = 128,
          seed: int = 0) -> nn.Module:
    """Adam with a cosine schedule; keeps the weights with the best validation accuracy."""
    torch.manual_seed(seed)
    # LeNet-sized layers run faster on one thread than on two contending ones.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((data.train_x.shape[0] + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()
    best, best_state = -1.0, None
    x_all, y_all = torch.from_numpy(data.train_x), torch.from_numpy(data.train_y)
    with progress_task("training", steps) as advance:
        for epoch in range(epochs):
            model.train()
            perm = torch.from_numpy(rng.permutation(x_all.shape[0]))
            for s in range(0, x_all.shape[0], batch):
                idx = perm[s:s + batch]
                opt.zero_grad()
                loss = loss_fn(model(x_all[idx]), y_all[idx])
                loss.backward()
                opt.step()
                sched.step()
                advance(1, epoch=f"{epoch + 1}/{epochs}", loss=f"{loss.item():.3f}")
            acc = accuracy(model, data.val_x, data.val_y)
            if acc > best:
                best, best_state = acc, {k: v.clone() for k, v in model.state_dict().items()}
            advance(0, epoch=f"{epoch + 1}/{epochs}", val=f"{acc:.4f}")
    torch.set_num_threads(threads)
    model.load_state_dict(best_state)
    return model.eval()


def trained(model_name: str, data: Dataset, epochs: int = 8, seed: int = 0) -> nn.Module:
    """A trained built-in model, from the cache when the same recipe ran before."""
    from torch2mcu.models import BUILTIN

    key = hashlib.sha256(f"{model_name}|{data.name}|{epochs}|{seed}|{data.train_x.shape}|"
                         f"{float(data.train_x[:64].sum()):.6f}".encode()).hexdigest()[:16]
    path = CACHE / "models" / f"{model_name}-{data.name}-{key}.pt"
    model = BUILTIN[model_name]()
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        note(f"[dim]using the cached trained {model_name}: {path}[/dim]")
        return model.eval()
    model = train(model, data, epochs=epochs, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)
    return model
