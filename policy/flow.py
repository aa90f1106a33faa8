"""Flow matching for the action expert: normalisation, the training loss and the sampler.

Convention: flow time ``t`` runs from 0 (clean actions) to 1 (pure noise),
``x_t = t * noise + (1 - t) * actions`` and the network predicts the velocity
``noise - actions``. Sampling integrates from ``t = 1`` to ``t = 0`` in ``flow_steps``
Euler steps. Committed prefix tokens are held clean (time 0) throughout, in training and
in sampling, and are never part of the loss.

``sample_guided`` is real-time chunking by inpainting (Black et al., arXiv 2506.07339):
no prefix tokens; at every integration step the velocity is corrected so that the
denoised estimate moves towards a target chunk (the previous chunk's remaining actions),
weighted per row by a soft mask: 1 on the rows that will run while inferring, then
decaying exponentially to 0 where the target ends.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from policy.model import AIM_UNIT_M, VLA, ModelConfig


class FlowPolicyModel(nn.Module):
    """The VLA plus its data normalisation (buffers, saved with the weights)."""

    # Buffers (``register_buffer``), declared so the type checker knows they are tensors.
    state_mean: torch.Tensor
    state_std: torch.Tensor
    action_mean: torch.Tensor
    action_std: torch.Tensor

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = VLA(cfg)
        self.register_buffer("state_mean", torch.zeros(cfg.state_dim))
        self.register_buffer("state_std", torch.ones(cfg.state_dim))
        self.register_buffer("action_mean", torch.zeros(cfg.action_dim))
        self.register_buffer("action_std", torch.ones(cfg.action_dim))

    def set_normalisation(
        self,
        state: torch.Tensor,
        actions: torch.Tensor,
        *,
        floor: float | torch.Tensor = 1e-4,
    ) -> None:
        """Per-dimension mean and std from training data (rows of states and actions).

        ``floor`` (a number or one value per action dimension) bounds each action scale
        from below, so that a dimension the demonstrations hardly use still has a
        sensible unit when the policy's own states call for large corrections.
        """
        self.state_mean.copy_(state.mean(0))
        self.state_std.copy_(state.std(0).clamp_min(1e-2))
        self.action_mean.copy_(actions.mean(0))
        self.action_std.copy_(torch.maximum(actions.std(0), torch.as_tensor(floor)))

    @staticmethod
    def images_in(images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, S, S, 3) -> float (B, C, 3, S, S) in [-0.5, 0.5]."""
        return images.permute(0, 1, 4, 2, 3).float().div_(255.0).sub_(0.5)

    def _encode(
        self, images: torch.Tensor, text: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        s = (state - self.state_mean) / self.state_std
        return self.net.encode(self.images_in(images), text, s)

    def loss(
        self,
        images: torch.Tensor,
        text: torch.Tensor,
        state: torch.Tensor,
        actions: torch.Tensor,
        valid: torch.Tensor,
        prefix_len: torch.Tensor,
        generator: torch.Generator | None = None,
        aux_weight: float = 0.5,
        aim: torch.Tensor | None = None,
        aim_valid: torch.Tensor | None = None,
        aim_weight: float = 1.0,
        prefix: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Flow-matching loss on the noisy (non-prefix, valid) action tokens, plus
        ``aux_weight`` times the trunk's direct regression of the next actions, plus
        ``aim_weight`` times the aim head's error on the valid ``aim`` offsets (B, 2, 2)
        in metres, where the model has an aim head.

        ``prefix`` (B, H, A), robot units, is what the clean prefix tokens carry; by
        default the first ``prefix_len`` rows of ``actions`` themselves."""
        b, h, _ = actions.shape
        a = (actions - self.action_mean) / self.action_std
        noise = torch.randn(a.shape, generator=generator)
        # Beta(1.5, 1) puts more weight on noisier times, where the task is hardest.
        t = torch.distributions.Beta(1.5, 1.0).sample((b,)) * 0.999 + 0.001
        is_pre = torch.arange(h)[None] < prefix_len[:, None]
        t_tok = torch.where(is_pre, torch.zeros(()), t[:, None].expand(b, h))
        clean = a
        if prefix is not None:
            pre = (prefix - self.action_mean) / self.action_std
            clean = torch.where(is_pre[..., None], pre, a)
        x_t = t_tok[..., None] * noise + (1 - t_tok[..., None]) * clean
        memory, mem_mask, cond = self._encode(images, text, state)
        v = self.net.velocity(x_t, t_tok, memory, mem_mask, prefix_len, cond)
        w = (valid & ~is_pre).float()
        per_tok = ((v - (noise - a)) ** 2).mean(-1)
        flow = (per_tok * w).sum() / w.sum().clamp_min(1.0)
        k = self.cfg.aux_actions
        wa = valid[:, :k].float()
        aux = ((self.net.aux_actions(memory, mem_mask, cond) - a[:, :k]) ** 2).mean(-1)
        total = flow + aux_weight * (aux * wa).sum() / wa.sum().clamp_min(1.0)
        if self.net.aim is not None and cond is not None and aim is not None:
            assert aim_valid is not None
            pred = self.net.aim(cond).view(b, 2, 2)
            # Huber: a hand far off target (a dropped fastener's next try) must not
            # dominate the millimetres that decide a clean thread start.
            err = F.smooth_l1_loss(pred, aim / AIM_UNIT_M, reduction="none").sum(-1)
            wv = aim_valid.float()
            total = total + aim_weight * (err * wv).sum() / wv.sum().clamp_min(1.0)
        return total

    @torch.no_grad()
    def sample(
        self,
        images: torch.Tensor,
        text: torch.Tensor,
        state: torch.Tensor,
        prefix: torch.Tensor,
        prefix_len: torch.Tensor,
        *,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        noise_scale: float = 1.0,
    ) -> torch.Tensor:
        """Action chunks (B, H, A) in robot units; rows below ``prefix_len`` equal ``prefix``.

        ``prefix`` is (B, P, A) in robot units, zero-padded past each ``prefix_len``.
        ``noise_scale`` below 1 starts the integration nearer the centre of the noise
        distribution, trading diversity for precision (0 is deterministic).
        """
        steps = steps or self.cfg.flow_steps
        b, h = images.shape[0], self.cfg.horizon
        memory, mem_mask, cond = self._encode(images, text, state)
        is_pre = (torch.arange(h)[None] < prefix_len[:, None])[..., None]
        clean = torch.zeros(b, h, self.cfg.action_dim)
        p = prefix.shape[1]
        clean[:, :p] = (prefix - self.action_mean) / self.action_std
        x = torch.randn(b, h, self.cfg.action_dim, generator=generator) * noise_scale
        x = torch.where(is_pre, clean, x)
        for k in range(steps):
            t = 1.0 - k / steps
            t_tok = torch.where(is_pre[..., 0], torch.zeros(()), torch.full((b, h), t))
            v = self.net.velocity(x, t_tok, memory, mem_mask, prefix_len, cond)
            x = torch.where(is_pre, clean, x - v / steps)
        out = x * self.action_std + self.action_mean
        out[:, :p] = torch.where(is_pre[:, :p], prefix, out[:, :p])
        return out

    def sample_guided(
        self,
        images: torch.Tensor,
        text: torch.Tensor,
        state: torch.Tensor,
        target: torch.Tensor,
        weights: torch.Tensor,
        *,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        noise_scale: float = 1.0,
        max_guidance: float = 5.0,
    ) -> torch.Tensor:
        """Action chunks (B, H, A) in robot units, inpainted towards ``target`` (B, H, A,
        robot units) with per-row ``weights`` (B, H) in [0, 1] (see module doc).

        The guidance is the vector-Jacobian product of the weighted error of the denoised
        estimate ``x - t v``, scaled as in pseudo-inverse guidance and clipped at
        ``max_guidance``. Rows of weight 1 are not forced: callers that must not change
        them overwrite them.
        """
        steps = steps or self.cfg.flow_steps
        b, h = images.shape[0], self.cfg.horizon
        with torch.no_grad():
            memory, mem_mask, cond = self._encode(images, text, state)
        y = (target - self.action_mean) / self.action_std
        w = weights[..., None]
        no_prefix = torch.zeros(b, dtype=torch.long)
        x = torch.randn(b, h, self.cfg.action_dim, generator=generator) * noise_scale
        for k in range(steps):
            t = 1.0 - k / steps
            x_in = x.detach().requires_grad_(True)
            with torch.enable_grad():
                v = self.net.velocity(
                    x_in, torch.full((b, h), t), memory, mem_mask, no_prefix, cond
                )
                err = (w * (y - (x_in - t * v))).detach()
                (grad,) = torch.autograd.grad(x_in - t * v, x_in, grad_outputs=err)
            tau = 1.0 - t  # time from noise towards the data, as in the paper
            r2 = tau**2 / (tau**2 + (1 - tau) ** 2)
            c = max_guidance if tau <= 0 else min(max_guidance, (1 - tau) / (tau * r2))
            x = (x - (v.detach() - c * grad) / steps).detach()
        return x * self.action_std + self.action_mean


def soft_mask(horizon: int, frozen: int, overlap: int) -> torch.Tensor:
    """Guidance weights per row: 1 below ``frozen``, exponentially decaying over
    ``frozen .. overlap - 1``, 0 from ``overlap`` on (the target has no rows there)."""
    w = torch.zeros(horizon)
    overlap = min(overlap, horizon)
    frozen = min(frozen, overlap)
    w[:frozen] = 1.0
    span = overlap - frozen + 1
    for i in range(frozen, overlap):
        c = (overlap - i) / span
        w[i] = c * (math.exp(c) - 1) / (math.e - 1)
    return w
