"""The VLA model: cameras, instruction and state into a trunk; a flow-matching action expert.

Shape (a small model of the large VLA family):

* vision: a shared CNN over each camera ending in soft-argmax keypoint tokens, plus a
  camera embedding;
* language: the instruction as tokens from ``policy.tokenizer``;
* proprioception: the normalised state as one token;
* trunk: a transformer encoder over all of these tokens;
* action expert: a transformer over ``H`` action tokens that cross-attends to the trunk
  and predicts the flow-matching velocity of each noisy action token.

Keypoint skip (``keypoint_skip``): the full-resolution keypoint positions of every camera
also enter the state token and are added to every action token. A stud's position is read
off a wrist image to a fifth of a millimetre by one such keypoint, but after attention and
layer norms the action chunk had kept only about a millimetre and a half of it; this path
carries the positions to the actions unblurred. With ``aim_head``, training also reads
from that conditioning the hidden offset each hand must still close (``CellEnv.aim``), so
the path learns to say where the target is, not only what the expert did about it.

Committed prefix: the first ``d`` action tokens carry clean, already committed actions
(flow time 0). Their self-attention is Λ-shaped: a noisy token may attend to the prefix
only if it lies within ``prefix_window`` steps after it, so the tokens that must join the
prefix see it and the later ones have to read the observation instead of copying it.
Only the noisy tokens are trained (see ``policy.flow``). The mask alone does not stop the
copying (noisy tokens see each other), so training also shows prefixes that are not the
labels' own first rows (``policy.train.corrupt_prefix`` and relabelled plans).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from policy.tokenizer import VOCAB
from robot.schema import ACTION_DIM, CAMERAS, IMAGE_SIZE, STATE_DIM


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network; stored as JSON in every checkpoint."""

    cameras: tuple[str, ...] = CAMERAS
    image_size: int = IMAGE_SIZE
    state_dim: int = STATE_DIM
    action_dim: int = ACTION_DIM
    horizon: int = 30
    max_prefix: int = 8
    prefix_window: int = 4
    vocab: tuple[str, ...] = VOCAB
    text_len: int = 12
    d_model: int = 128
    n_heads: int = 4
    trunk_layers: int = 2
    expert_layers: int = 2
    vision_channels: tuple[int, ...] = (16, 32)
    keypoints: int = 8
    fine_keypoints: int = 4
    flow_steps: int = 5
    aux_actions: int = 4
    keypoint_skip: bool = True
    aim_head: bool = True
    extra: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ModelConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config fields: {sorted(unknown)}")
        fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        # Checkpoints written before these fields existed had neither part.
        fixed.setdefault("keypoint_skip", False)
        fixed.setdefault("aim_head", False)
        return cls(**fixed)  # type: ignore[arg-type]


# Keypoint offsets that matter are a few hundredths of the image half width; this gain
# brings them to order one where they enter linear layers directly.
KEYPOINT_GAIN = 4.0
AIM_UNIT_M = 0.005


class VisionEncoder(nn.Module):
    """Image (B, 3, S, S) in [-0.5, 0.5] -> (B, keypoints + fine_keypoints, d) tokens and
    the fine keypoints' positions (B, fine_keypoints, 2) in [-1, 1].

    A small CNN (with x, y coordinate channels) ends in ``keypoints`` heat maps; each
    token is the soft-argmax position of one map plus the features pooled under it.
    Soft-argmax keeps sub-pixel position information, which is what aligning a nut
    over a stud needs, at a fraction of the cost of one token per image patch.
    """

    # Buffers (``register_buffer``), declared so the type checker knows they are tensors.
    coords: torch.Tensor
    grid_xy: torch.Tensor
    pix_xy: torch.Tensor

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3 + 2  # RGB plus x, y coordinate channels
        for i, c in enumerate(cfg.vision_channels):
            k = 5 if i == 0 else 3
            conv = nn.Conv2d(c_in, c, k, stride=2, padding=k // 2)
            layers += [conv, nn.GroupNorm(4, c), nn.GELU()]
            c_in = c
        self.net = nn.Sequential(*layers)
        self.heat = nn.Conv2d(c_in, cfg.keypoints, 1)
        self.proj = nn.Linear(c_in + 2, cfg.d_model)
        # Full-resolution keypoints straight from the pixels: a dark stud or a coloured
        # tool tip is found by a single filter, so these positions are useful from the
        # first training steps, long before the deep maps have learned anything.
        self.fine_heat = nn.Conv2d(5, cfg.fine_keypoints, 3, padding=1)
        self.fine_gain = nn.Parameter(torch.tensor(20.0))
        with torch.no_grad():
            # The first fine map starts as a darkness detector (holes, studs and gaps are
            # the darkest things in view); training is free to change it.
            self.fine_heat.weight[0].zero_()
            self.fine_heat.weight[0, :3, 1, 1] = -1.0
            bias = self.fine_heat.bias
            assert bias is not None  # Conv2d is built with a bias by default
            bias[0] = 0.0
        self.fine_proj = nn.Linear(5 + 2, cfg.d_model)
        s = cfg.image_size
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, s), torch.linspace(-1, 1, s), indexing="ij")
        self.register_buffer("coords", torch.stack([xs, ys])[None], persistent=False)
        m = s // 2 ** len(cfg.vision_channels)
        gy, gx = torch.meshgrid(torch.linspace(-1, 1, m), torch.linspace(-1, 1, m), indexing="ij")
        self.register_buffer("grid_xy", torch.stack([gx, gy], -1).reshape(-1, 2), persistent=False)
        self.register_buffer("pix_xy", self.coords[0].flatten(1).T.contiguous(), persistent=False)

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = img.shape[0]
        x = torch.cat([img, self.coords.expand(b, -1, -1, -1)], dim=1)
        f = self.net(x)
        att = self.heat(f).flatten(2).softmax(dim=-1)  # (B, K, HW)
        xy = att @ self.grid_xy  # (B, K, 2) soft-argmax positions
        feat = att @ f.flatten(2).transpose(1, 2)  # (B, K, C) features under each map
        fine = (self.fine_heat(x).flatten(2) * self.fine_gain).softmax(dim=-1)
        fine_xy = fine @ self.pix_xy
        fine_tok = torch.cat([fine @ x.flatten(2).transpose(1, 2), fine_xy], dim=-1)
        tokens = torch.cat(
            [self.proj(torch.cat([feat, xy], dim=-1)), self.fine_proj(fine_tok)], dim=1
        )
        return tokens, fine_xy


class Block(nn.Module):
    """Pre-norm transformer block: self-attention (masked), optional cross-attention, MLP."""

    def __init__(self, d: int, heads: int, cross: bool) -> None:
        super().__init__()
        self.heads = heads
        self.n1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.o = nn.Linear(d, d)
        self.cross = cross
        if cross:
            self.n2 = nn.LayerNorm(d)
            self.q2 = nn.Linear(d, d)
            self.kv2 = nn.Linear(d, 2 * d)
            self.o2 = nn.Linear(d, d)
        self.n3 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.heads, d // self.heads).transpose(1, 2)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        b, h, n, dh = x.shape
        return x.transpose(1, 2).reshape(b, n, h * dh)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        q, k, v = (self._split(t) for t in self.qkv(self.n1(x)).chunk(3, dim=-1))
        x = x + self.o(self._merge(F.scaled_dot_product_attention(q, k, v, attn_mask=mask)))
        if self.cross:
            assert memory is not None
            q2 = self._split(self.q2(self.n2(x)))
            k2, v2 = self._split(self.kv2(memory)).chunk(2, dim=-1)
            att = F.scaled_dot_product_attention(q2, k2, v2, attn_mask=memory_mask)
            x = x + self.o2(self._merge(att))
        return x + self.mlp(self.n3(x))


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of flow time ``t`` in [0, 1], any shape -> (..., dim)."""
    half = dim // 2
    freqs = torch.exp(torch.linspace(0, math.log(1000.0), half, device=t.device))
    ang = t[..., None] * freqs * 2 * math.pi
    return torch.cat([ang.sin(), ang.cos()], dim=-1)


def prefix_mask(prefix_len: torch.Tensor, horizon: int, window: int) -> torch.Tensor:
    """Boolean self-attention mask (B, 1, H, H) for the action expert (True = may attend).

    Prefix tokens see only the prefix. A noisy token at row ``i`` sees every noisy token,
    and the prefix only if ``i < d + window`` (the Λ shape).
    """
    i = torch.arange(horizon, device=prefix_len.device)
    d = prefix_len[:, None, None]
    q, k = i[None, :, None], i[None, None, :]
    q_pre, k_pre = q < d, k < d
    allowed = torch.where(q_pre, k_pre, ~k_pre | (q < d + window))
    return allowed[:, None]


class VLA(nn.Module):
    """The model. Inputs are normalised by ``policy.flow``; see module doc for the layout."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.vision = VisionEncoder(cfg)
        self.cam_emb = nn.Parameter(torch.zeros(len(cfg.cameras), 1, d))
        self.tok_emb = nn.Embedding(len(cfg.vocab), d, padding_idx=0)
        self.text_pos = nn.Parameter(torch.zeros(1, cfg.text_len, d))
        n_kp = 2 * cfg.fine_keypoints * len(cfg.cameras) if cfg.keypoint_skip else 0
        self.state_proj = nn.Sequential(
            nn.Linear(cfg.state_dim + n_kp, d), nn.GELU(), nn.Linear(d, d)
        )
        self.kp_cond = (
            nn.Sequential(nn.Linear(n_kp, d), nn.GELU(), nn.Linear(d, d)) if n_kp else None
        )
        # Training-only: both hands' sideways offsets (AIM_UNIT units) from the conditioning.
        self.aim = nn.Linear(d, 4) if n_kp and cfg.aim_head else None
        self.trunk = nn.ModuleList(
            Block(d, cfg.n_heads, cross=False) for _ in range(cfg.trunk_layers)
        )
        self.trunk_norm = nn.LayerNorm(d)
        self.act_in = nn.Linear(cfg.action_dim, d)
        self.act_pos = nn.Parameter(torch.zeros(1, cfg.horizon, d))
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        self.expert = nn.ModuleList(
            Block(d, cfg.n_heads, cross=True) for _ in range(cfg.expert_layers)
        )
        self.out_norm = nn.LayerNorm(d)
        self.act_out = nn.Linear(d, cfg.action_dim)
        # Training-only head: regress the next few actions straight from the trunk. Its
        # low-variance gradient teaches the encoder where things are much faster than the
        # flow loss alone; sampling never uses it.
        self.aux = nn.Sequential(
            nn.Linear(d, d), nn.GELU(), nn.Linear(d, cfg.aux_actions * cfg.action_dim)
        )
        for p in (self.cam_emb, self.text_pos, self.act_pos):
            nn.init.normal_(p, std=0.02)
        nn.init.zeros_(self.act_out.weight)
        nn.init.zeros_(self.act_out.bias)

    def encode(
        self, images: torch.Tensor, text: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """images (B, C, 3, S, S) in [-0.5, 0.5], text (B, L) ids, state (B, state_dim) ->
        memory (B, N, d), its key mask (B, 1, 1, N) (True where attendable) and the
        keypoint conditioning (B, d) for the action tokens (None without the skip path)."""
        b, c = images.shape[:2]
        vis, fine_xy = self.vision(images.flatten(0, 1))
        vis = (vis.view(b, c, -1, self.cfg.d_model) + self.cam_emb[None]).flatten(1, 2)
        txt = self.tok_emb(text) + self.text_pos
        cond = None
        if self.kp_cond is not None:
            kp = fine_xy.reshape(b, -1) * KEYPOINT_GAIN
            state = torch.cat([state, kp], dim=-1)
            cond = self.kp_cond(kp)
        st = self.state_proj(state)[:, None]
        x = torch.cat([vis, txt, st], dim=1)
        keep = torch.cat(
            [
                torch.ones(b, vis.shape[1], dtype=torch.bool, device=x.device),
                text != 0,
                torch.ones(b, 1, dtype=torch.bool, device=x.device),
            ],
            dim=1,
        )[:, None, None, :]
        for blk in self.trunk:
            x = blk(x, mask=keep)
        return self.trunk_norm(x), keep, cond

    def aux_actions(
        self, memory: torch.Tensor, keep: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, aux_actions, A) normalised next actions regressed from the trunk."""
        w = keep[:, 0, 0, :, None].float()
        pooled = (memory * w).sum(1) / w.sum(1).clamp_min(1.0)
        if cond is not None:
            pooled = pooled + cond
        return self.aux(pooled).view(memory.shape[0], self.cfg.aux_actions, -1)

    def velocity(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor,
        prefix_len: torch.Tensor,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Flow velocity for action tokens x_t (B, H, A) at per-token times t (B, H);
        ``cond`` is ``encode``'s keypoint conditioning, added to every action token."""
        h = x_t.shape[1]
        te = self.time_mlp(time_embedding(t, self.cfg.d_model))
        x = self.act_in(x_t) + self.act_pos[:, :h] + te
        if cond is not None:
            x = x + cond[:, None]
        mask = prefix_mask(prefix_len, h, self.cfg.prefix_window)
        for blk in self.expert:
            x = blk(x, mask=mask, memory=memory, memory_mask=memory_mask)
        return self.act_out(self.out_norm(x))
