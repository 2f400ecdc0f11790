"""Differentiable mesh rendering: rasterizer op, cameras, shading (see renderer/README.md)."""
from renderer import camera, sampling, shading
from renderer.rasterizer import Rasterized, interpolate, load_op, rasterize
from renderer.render import render

__all__ = ["Rasterized", "camera", "interpolate", "load_op", "rasterize", "render", "sampling", "shading"]
