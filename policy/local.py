"""``LocalPolicy``: the torch model behind the ``ChunkPolicy`` interface, on this machine."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from policy.base import CheckpointError, PolicyInputError, check_prefix, parse_run_settings
from policy.checkpoint import load_checkpoint
from policy.flow import FlowPolicyModel, soft_mask
from policy.tokenizer import Tokenizer
from robot.schema import Observation

# Distinct instructions kept tokenised (least recently used dropped first): a robot's
# recipes use a handful, and a server's callers may send any text.
TEXT_CACHE_SIZE = 64


def _run_settings(extra: dict[str, str], version: str) -> dict[str, int | None]:
    try:
        return parse_run_settings(extra)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {version}: {exc}") from exc


class LocalPolicy:
    """Run a ``FlowPolicyModel`` in-process.

    Sampling noise comes from a generator seeded with ``seed`` at ``reset()``, so an
    episode replays identically. ``max_prefix`` is the longest prefix the model was
    trained with; longer prefixes are refused. ``flow_steps`` overrides the checkpoint's
    number of integration steps; ``noise_scale`` the checkpoint's sampling temperature
    (``extra["noise_scale"]`` in its config, default 1). ``replan_age`` (how old the
    running actions get before the next chunk is requested) and ``join_ticks`` (over how
    many ticks the step into a new chunk is spread) are the config's ``extra`` of those
    names (None: the executor's default, see ``ExecConfig.for_policy``).
    """

    def __init__(
        self,
        model: FlowPolicyModel,
        version: str,
        *,
        seed: int = 0,
        flow_steps: int | None = None,
        noise_scale: float | None = None,
    ) -> None:
        self.model = model.eval()
        self.flow_steps = flow_steps
        extra = model.cfg.extra.get("noise_scale")
        self.noise_scale = noise_scale if noise_scale is not None else float(extra or 1.0)
        self.version = version
        self.horizon = model.cfg.horizon
        self.max_prefix = model.cfg.max_prefix
        run = _run_settings(model.cfg.extra, version)
        self.replan_age, self.join_ticks = run["replan_age"], run["join_ticks"]
        self._tok = Tokenizer(model.cfg.vocab, model.cfg.text_len)
        self._text_cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._seed = seed
        self._gen = torch.Generator().manual_seed(seed)

    @classmethod
    def load(cls, folder: Path, *, seed: int = 0, noise_scale: float | None = None) -> LocalPolicy:
        model, version, _ = load_checkpoint(folder)
        return cls(model, version, seed=seed, noise_scale=noise_scale)

    def reset(self) -> None:
        self._gen = torch.Generator().manual_seed(self._seed)

    def _text(self, instruction: str) -> torch.Tensor:
        """The tokenised instruction, from an LRU cache of ``TEXT_CACHE_SIZE`` entries."""
        t = self._text_cache.get(instruction)
        if t is None:
            t = torch.from_numpy(self._tok.encode(instruction))[None]
            self._text_cache[instruction] = t
            if len(self._text_cache) > TEXT_CACHE_SIZE:
                self._text_cache.popitem(last=False)
        else:
            self._text_cache.move_to_end(instruction)
        return t

    def _inputs(self, obs: Observation) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images, tokenised instruction and state of ``obs`` as model inputs (batch 1)."""
        cfg = self.model.cfg
        want = (cfg.image_size, cfg.image_size, 3)
        for c in cfg.cameras:
            img = obs.images.get(c)
            if img is None:
                raise PolicyInputError(f"observation lacks camera {c!r} (render must be on)")
            if img.shape != want or img.dtype != np.uint8:
                raise PolicyInputError(
                    f"camera {c!r} image must be uint8 {want}, got {img.dtype} {img.shape}"
                )
        images = np.stack([obs.images[c] for c in cfg.cameras])[None]
        state = np.asarray(obs.state, dtype=np.float32).reshape(1, -1)
        if state.shape[1] != cfg.state_dim:
            raise PolicyInputError(f"state must have {cfg.state_dim} values")
        return torch.from_numpy(images), self._text(obs.instruction), torch.from_numpy(state)

    def infer(self, obs: Observation, prefix: np.ndarray | None = None) -> np.ndarray:
        p = check_prefix(prefix, self.max_prefix)
        images, text, state = self._inputs(obs)
        with torch.inference_mode():
            out = self.model.sample(
                images,
                text,
                state,
                torch.from_numpy(p)[None],
                torch.tensor([len(p)]),
                steps=self.flow_steps,
                noise_scale=self.noise_scale,
                generator=self._gen,
            )
        chunk = out[0].numpy().astype(np.float32)
        chunk[: len(p)] = p
        return chunk

    def infer_guided(
        self, obs: Observation, target: np.ndarray, frozen: int, *, max_guidance: float = 5.0
    ) -> np.ndarray:
        """A chunk inpainted towards ``target`` (the previous plan from this observation's
        tick on, at most a horizon of rows) by real-time chunking; its first ``frozen``
        rows equal ``target``'s (they run while this is computed). ``max_guidance`` clips
        the guidance scale (0: plain sampling)."""
        h = self.horizon
        t = np.asarray(target, dtype=np.float32).reshape(-1, self.model.cfg.action_dim)[:h]
        if not 0 <= frozen <= len(t):
            raise PolicyInputError(f"frozen rows ({frozen}) must lie within the target")
        padded = np.zeros((h, t.shape[1]), dtype=np.float32)
        padded[: len(t)] = t
        images, text, state = self._inputs(obs)
        with torch.no_grad():
            out = self.model.sample_guided(
                images,
                text,
                state,
                torch.from_numpy(padded)[None],
                soft_mask(h, frozen, len(t))[None],
                steps=self.flow_steps,
                noise_scale=self.noise_scale,
                generator=self._gen,
                max_guidance=max_guidance,
            )
        chunk = out[0].numpy().astype(np.float32)
        chunk[:frozen] = t[:frozen]
        return chunk
