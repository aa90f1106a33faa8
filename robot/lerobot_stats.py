"""Feature statistics of a LeRobotDataset export, as the reader's ``meta/stats.json`` and
the ``stats/<feature>/<stat>`` columns of ``meta/episodes`` hold them.

Each feature gets ``min``, ``max``, ``mean``, ``std``, ``count`` (frames) and the quantiles
``q01 q10 q50 q90 q99``, per component. Images are per channel, scaled to [0, 1] and
shaped (3, 1, 1), so they broadcast over a (3, H, W) image as the reader's normalisers expect.
"""

from __future__ import annotations

from typing import Any

import numpy as np

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)


def _stats_of(values: np.ndarray, *, image: bool) -> dict[str, np.ndarray]:
    """Per-component stats; images per channel in [0, 1] shaped (3, 1, 1) as the reader's."""
    if image:
        x = values.reshape(-1, values.shape[-1]).astype(np.float64) / 255.0
    else:
        x = values.reshape(values.shape[0], -1).astype(np.float64)
    stats = {
        "min": x.min(axis=0),
        "max": x.max(axis=0),
        "mean": x.mean(axis=0),
        "std": x.std(axis=0),
        "count": np.array([values.shape[0]]),
    }
    for q, v in zip(QUANTILES, np.quantile(x, QUANTILES, axis=0), strict=True):
        stats[f"q{round(q * 100):02d}"] = v
    if image:
        stats = {k: v if k == "count" else v.reshape(-1, 1, 1) for k, v in stats.items()}
    return stats


def episode_stats(
    cols: dict[str, Any], feats: dict[str, dict[str, Any]], images: dict[str, np.ndarray]
) -> dict[str, dict[str, np.ndarray]]:
    """Stats of every feature of one episode (images from their raw arrays)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, ft in feats.items():
        if ft["dtype"] == "image":
            out[key] = _stats_of(images[key.removeprefix("observation.images.")], image=True)
        else:
            out[key] = _stats_of(np.asarray(cols[key]), image=False)
    return out


def _weighted(parts: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    return np.asarray(np.average(np.stack(parts), axis=0, weights=weights))


def aggregate_stats(per_episode: list[dict[str, dict[str, np.ndarray]]]) -> dict[str, Any]:
    """Dataset stats from episode stats, as JSON lists: exact min, max, mean and pooled std;
    quantiles as the count-weighted mean of the episodes' (as the reader's own tools do)."""
    out: dict[str, Any] = {}
    for key in per_episode[0]:
        parts = [ep[key] for ep in per_episode]
        w = np.array([float(p["count"][0]) for p in parts])
        mean = _weighted([p["mean"] for p in parts], w)
        second = _weighted([p["std"] ** 2 + p["mean"] ** 2 for p in parts], w)
        agg = {
            "min": np.min([p["min"] for p in parts], axis=0),
            "max": np.max([p["max"] for p in parts], axis=0),
            "mean": mean,
            "std": np.sqrt(np.maximum(second - mean**2, 0.0)),
            "count": np.array([int(w.sum())]),
        }
        for q in QUANTILES:
            name = f"q{round(q * 100):02d}"
            agg[name] = _weighted([p[name] for p in parts], w)
        out[key] = {k: v.tolist() for k, v in agg.items()}
    return out
