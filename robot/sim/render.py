"""Small camera images drawn with numpy from flat primitives (discs, rings, boxes).

Image convention for every camera: rows run from the camera's forward direction (top)
backwards, columns from its left (first column) to its right; the head camera looks
straight down on the work area (orthographic, cell x up, cell y left), a wrist camera looks
straight down the tool axis from ``Scene.wrist_height`` above the tool point with a
``WRIST_FOV_DEG`` field of view, turned with the wrist's yaw, so the tool axis is the image
centre. Edges are anti-aliased (coverage from the signed distance), which keeps sub-pixel
positions visible to a network.

Cost is kept low by drawing each primitive only inside its bounding patch and by caching
the head camera's static layer until the scene's ``version`` changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robot.schema import IMAGE_SIZE

WRIST_CAM_HEIGHT_M = 0.05
WRIST_FOV_DEG = 45.0
_TAN_HALF = math.tan(math.radians(WRIST_FOV_DEG / 2))

Color = tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class Disc:
    """A filled disc (or a ring when ``inner`` > 0) lying flat at height ``z``."""

    x: float
    y: float
    z: float
    r: float
    color: Color
    inner: float = 0.0


@dataclass(frozen=True, slots=True)
class Box:
    """A flat rectangle with half sizes ``hx``, ``hy`` turned by ``yaw`` about its centre."""

    x: float
    y: float
    z: float
    hx: float
    hy: float
    yaw: float
    color: Color


Prim = Disc | Box


@dataclass(frozen=True, slots=True)
class View:
    """Where a camera is. ``half_m`` set: orthographic with that half width; else wrist."""

    x: float
    y: float
    z: float
    yaw: float
    half_m: float | None = None


@dataclass
class Scene:
    """What the cameras see: ``static`` changes rarely (bump ``version``), ``dynamic`` often,
    ``head_only`` is drawn by the head camera only (the arms seen from above).

    ``overlay`` is drawn per wrist camera (name -> primitives in that camera's own frame,
    metres from the tool axis at the tool point's depth): the tool and what it holds.
    """

    static: list[Prim]
    dynamic: list[Prim]
    version: int
    background: Color
    head: View
    wrists: dict[str, View]
    overlay: dict[str, list[Prim]]
    head_only: list[Prim]
    wrist_height: float = WRIST_CAM_HEIGHT_M  # camera above the tool point


class Renderer:
    """Draws a ``Scene`` into uint8 images with per-episode lighting and per-frame noise."""

    def __init__(self, rng: np.random.Generator, difficulty: float, size: int = IMAGE_SIZE):
        self.size = size
        self.rng = rng
        d = max(difficulty, 0.0)
        self.gain = float(np.clip(1.0 + rng.uniform(-0.08, 0.08) * d, 0.6, 1.4))
        self.noise_k = round(math.sqrt(3.0) * 2.0 * d)  # sd 2 grey levels at difficulty 1
        px = (2.0 * np.arange(size) + 1.0) / size
        self._nx = (1.0 - px).astype(np.float32)  # row i -> forward coordinate
        self._ny = (1.0 - px).astype(np.float32)  # column j -> left coordinate
        self._pix = 2.0 / size
        self._head_cache: tuple[int, np.ndarray] | None = None
        self._colors: dict[Color, np.ndarray] = {}

    def render(self, scene: Scene) -> dict[str, np.ndarray]:
        """Head camera then one image per wrist camera, as fresh (S, S, 3) uint8 arrays."""
        out = {"head": self._finish(self._head(scene))}
        for name, view in scene.wrists.items():
            img = self._blank(scene.background)
            self._draw_all(img, scene.static, view)
            self._draw_all(img, scene.dynamic, view)
            tool = View(0.0, 0.0, scene.wrist_height, 0.0)
            self._draw_all(img, scene.overlay.get(name, []), tool)
            out[name] = self._finish(img)
        return out

    def _head(self, scene: Scene) -> np.ndarray:
        if self._head_cache is None or self._head_cache[0] != scene.version:
            base = self._blank(scene.background)
            self._draw_all(base, scene.static, scene.head)
            self._head_cache = (scene.version, base)
        img = self._head_cache[1].copy()
        self._draw_all(img, scene.dynamic, scene.head)
        self._draw_all(img, scene.head_only, scene.head)
        return img

    def _blank(self, color: Color) -> np.ndarray:
        img = np.empty((self.size, self.size, 3), dtype=np.float32)
        img[...] = color
        return img

    def _finish(self, img: np.ndarray) -> np.ndarray:
        img *= 255.0 * self.gain
        if self.noise_k > 0:
            # Uniform integer pixel noise with the wanted standard deviation: several
            # times cheaper to draw than Gaussian noise, and a camera's noise is not
            # Gaussian either.
            img += self.rng.integers(-self.noise_k, self.noise_k + 1, img.shape, dtype=np.int16)
        np.clip(img, 0.0, 255.0, out=img)
        return img.astype(np.uint8)

    def _draw_all(self, img: np.ndarray, prims: list[Prim], view: View) -> None:
        for p in prims:
            if view.half_m is not None:
                k = 1.0 / view.half_m
            else:
                depth = view.z - p.z
                if depth <= 1e-3:
                    continue  # at or above the camera
                k = 1.0 / (depth * _TAN_HALF)
            c, s = math.cos(view.yaw), math.sin(view.yaw)
            dx, dy = p.x - view.x, p.y - view.y
            nx, ny = (c * dx + s * dy) * k, (-s * dx + c * dy) * k
            if isinstance(p, Disc):
                self._disc(img, nx, ny, p.r * k, p.inner * k, p.color)
            else:
                self._box(img, nx, ny, p.hx * k, p.hy * k, p.yaw - view.yaw, p.color)

    def _patch(self, nx: float, ny: float, reach: float) -> tuple[int, int, int, int] | None:
        s, half = self.size, self.size / 2.0
        reach += self._pix
        i0 = max(math.floor((1.0 - nx - reach) * half - 0.5), 0)
        i1 = min(math.ceil((1.0 - nx + reach) * half - 0.5) + 1, s)
        j0 = max(math.floor((1.0 - ny - reach) * half - 0.5), 0)
        j1 = min(math.ceil((1.0 - ny + reach) * half - 0.5) + 1, s)
        if i0 >= i1 or j0 >= j1:
            return None
        return i0, i1, j0, j1

    def _disc(
        self, img: np.ndarray, nx: float, ny: float, r: float, inner: float, color: Color
    ) -> None:
        box = self._patch(nx, ny, r)
        if box is None:
            return
        i0, i1, j0, j1 = box
        gx = self._nx[i0:i1, None] - nx
        gy = self._ny[None, j0:j1] - ny
        d = np.sqrt(gx * gx + gy * gy)
        cov = np.clip((r - d) / self._pix + 0.5, 0.0, 1.0)
        if inner > 0:
            cov *= np.clip((d - inner) / self._pix + 0.5, 0.0, 1.0)
        self._blend(img[i0:i1, j0:j1], cov, color)

    def _box(
        self,
        img: np.ndarray,
        nx: float,
        ny: float,
        hx: float,
        hy: float,
        yaw: float,
        color: Color,
    ) -> None:
        box = self._patch(nx, ny, math.hypot(hx, hy))
        if box is None:
            return
        c, s = math.cos(yaw), math.sin(yaw)
        inside = all(
            abs(c * (cx - nx) + s * (cy - ny)) <= hx - self._pix
            and abs(-s * (cx - nx) + c * (cy - ny)) <= hy - self._pix
            for cx in (-1.0, 1.0)
            for cy in (-1.0, 1.0)
        )
        if inside:  # covers the whole image (a close-up of the casting): just fill
            img[...] = color
            return
        i0, i1, j0, j1 = box
        gx = self._nx[i0:i1, None] - nx
        gy = self._ny[None, j0:j1] - ny
        lx = np.abs(c * gx + s * gy) - hx
        ly = np.abs(-s * gx + c * gy) - hy
        cov = np.clip(0.5 - np.maximum(lx, ly) / self._pix, 0.0, 1.0)
        self._blend(img[i0:i1, j0:j1], cov, color)

    def _blend(self, patch: np.ndarray, cov: np.ndarray, color: Color) -> None:
        rgb = self._colors.get(color)
        if rgb is None:
            rgb = self._colors[color] = np.asarray(color, dtype=np.float32)
        patch += cov[..., None] * (rgb - patch)
