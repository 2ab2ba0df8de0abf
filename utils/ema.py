"""Exponential moving average of a model's weights, for evaluation and export.

An EMA of the generator's weights gives smoother, usually better samples than the last iterate of
an adversarial game (Karras et al. 2018, "Progressive Growing of GANs"; Yazici et al. 2019). The
average covers parameters and floating-point buffers (BatchNorm running statistics); integer
buffers are copied.
"""
import copy
import math

import torch
import torch.nn as nn


class ModelEMA:
    """ema = decay * ema + (1 - decay) * model, with decay warmed up as min(decay, (1 + n) / (10 + n))
    after n updates, so that the first steps are not dominated by the random initialisation."""

    def __init__(self, model: nn.Module, decay: float = 0.999):
        self.decay, self.updates = decay, 0
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        model_state = model.state_dict()
        for name, ema_value in self.module.state_dict().items():
            value = model_state[name].detach()
            if ema_value.is_floating_point():
                ema_value.lerp_(value.to(ema_value.dtype), 1.0 - decay)
            else:
                ema_value.copy_(value)

    def skip_warmup(self) -> None:
        """Full decay from the next update on: for weights that are trained already (--init_from), where the
        warm-up would let the first few raw steps replace the average it starts from."""
        # (1 + n) / (10 + n) >= decay  <=>  n >= (10 * decay - 1) / (1 - decay)
        self.updates = max(self.updates, math.ceil((10 * self.decay - 1) / (1 - self.decay)) if self.decay < 1 else 0)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.updates = state["decay"], state["updates"]
        self.module.load_state_dict(state["module"])
