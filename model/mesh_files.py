"""Mesh and map files of a reconstruction: OBJ (coarse, detailed with its MTL), 16-bit displacement PNG.

Writers take open files (text for OBJ/MTL/JSON, binary for PNG) so that a caller writes several
outputs together through model/output_files.py (all or none); readers take paths.

Conventions (shared/DESIGN.md): millimetres, model frame (x right, y up, z towards the viewer);
UVs in [0, 1] with v = 1 at the top of the texture image (what OBJ, MeshLab and Blender expect, and
the UV layout's row 0); triangles counter-clockwise seen from the front.

Displacement PNG: one 16-bit grey channel, pixel (r, c) the texel (r, c) of the UV layout (row 0
at v = 1); millimetres = offset_mm + scale_mm * pixel value, the two numbers in the sidecar JSON
(`DisplacementEncoding`). The default encoding spans [-max_displacement, +max_displacement] over
0..65535, so a value of the map is within scale_mm / 2 of its decoding.
"""
import io
import json

import numpy as np

PNG_LEVELS = 65535


def _lines(line_format, rows):
    """One `line_format` line per row of a 2-D array (one % over the whole array: about twice as
    fast as a line at a time, which matters for a dense mesh of 10^5 triangles)."""
    rows = np.asarray(rows)
    return (line_format * len(rows)) % tuple(rows.ravel().tolist())


def write_coarse_obj(obj, vertices, colours, uv, triangles):
    """OBJ with vertex colours (`v x y z r g b`, colours in [0, 1]) and UVs sharing the vertex index.

    Args:
      obj: text file open for writing.
      vertices: [N, 3] mm; colours: [N, 3]; uv: [N, 2] in [0, 1]; triangles: [T, 3] 0-based, CCW-front.
    """
    colours = np.clip(colours, 0.0, 1.0)
    obj.write("# coarse 3D face reconstruction, millimetres, x right, y up, z towards the viewer\n")
    obj.write(_lines("v %.4f %.4f %.4f %.4f %.4f %.4f\n",
                     np.concatenate([np.asarray(vertices, np.float64), np.asarray(colours, np.float64)], axis=1)))
    obj.write(_lines("vt %.6f %.6f\n", np.asarray(uv, np.float64)))
    obj.write(_lines("f %d/%d %d/%d %d/%d\n", np.repeat(np.asarray(triangles, np.int64) + 1, 2, axis=1)))


def compact_mesh(vertices, triangles, *attributes):
    """Drops the vertices no triangle uses.

    Args:
      vertices: [V, 3]; triangles: [T, 3] into them; attributes: arrays [V, ...] (normals, UVs).
    Returns:
      (vertices [V', 3], triangles [T, 3] into them, *attributes [V', ...]) in the original order.
    """
    triangles = np.asarray(triangles)
    used = np.unique(triangles)
    index = np.full(len(vertices), -1, dtype=np.int64)
    index[used] = np.arange(len(used))
    return (np.asarray(vertices)[used], index[triangles]) + tuple(np.asarray(a)[used] for a in attributes)


def write_textured_obj(obj, vertices, normals, uv, triangles, mtl_name, material="face",
                       comment="detailed 3D face reconstruction"):
    """OBJ with vertex normals, UVs (one of each per vertex: `f a/a/a`) and a material.

    Args:
      obj: text file open for writing.
      vertices: [V, 3] mm; normals: [V, 3] unit; uv: [V, 2] in [0, 1]; triangles: [T, 3] 0-based.
      mtl_name: the MTL file's name, relative to the OBJ's folder (`mtllib`).
      material: the material's name in it (`usemtl`).
    """
    obj.write("# %s, millimetres, x right, y up, z towards the viewer\n" % comment)
    obj.write("mtllib %s\n" % mtl_name)
    obj.write(_lines("v %.4f %.4f %.4f\n", np.asarray(vertices, np.float64)))
    obj.write(_lines("vt %.6f %.6f\n", np.asarray(uv, np.float64)))
    obj.write(_lines("vn %.5f %.5f %.5f\n", np.asarray(normals, np.float64)))
    obj.write("usemtl %s\n" % material)
    obj.write(_lines("f %d/%d/%d %d/%d/%d %d/%d/%d\n", np.repeat(np.asarray(triangles, np.int64) + 1, 3, axis=1)))


def write_mtl(mtl, texture_name, material="face"):
    """A material with a diffuse texture (`map_Kd`, relative to the MTL's folder), no specular."""
    mtl.write("newmtl %s\nKa 1.000 1.000 1.000\nKd 1.000 1.000 1.000\nKs 0.000 0.000 0.000\n"
              "d 1.0\nillum 1\nmap_Kd %s\n" % (material, texture_name))


class DisplacementEncoding(object):
    """mm = offset_mm + scale_mm * value for 16-bit values 0..65535."""

    def __init__(self, offset_mm, scale_mm):
        if not scale_mm > 0 or not np.isfinite(offset_mm):
            raise ValueError("a displacement encoding needs a finite offset and a positive scale, got %r, %r"
                             % (offset_mm, scale_mm))
        self.offset_mm = float(offset_mm)
        self.scale_mm = float(scale_mm)

    @classmethod
    def spanning(cls, max_displacement):
        """The encoding of [-max_displacement, +max_displacement] mm over the 16-bit range."""
        return cls(-float(max_displacement), 2.0 * float(max_displacement) / PNG_LEVELS)

    def encode(self, displacement_mm):
        """[S, S] mm -> uint16 [S, S] (values outside the span are clipped to it)."""
        levels = np.round((np.asarray(displacement_mm, np.float64) - self.offset_mm) / self.scale_mm)
        return np.clip(levels, 0, PNG_LEVELS).astype(np.uint16)

    def decode(self, values):
        """uint16 [S, S] -> float64 [S, S] mm."""
        return self.offset_mm + self.scale_mm * np.asarray(values, np.float64)


def write_displacement(png, sidecar, displacement_mm, encoding, extra=None):
    """The 16-bit PNG of a displacement map and its JSON sidecar.

    Args:
      png: binary file open for writing; sidecar: text file open for writing.
      displacement_mm: [S, S] (or [S, S, 1]) mm.
      encoding: DisplacementEncoding.
      extra: dict of more sidecar entries (e.g. the displacement direction).
    """
    import cv2

    displacement_mm = np.asarray(displacement_mm)
    if displacement_mm.ndim == 3:
        displacement_mm = displacement_mm[..., 0]
    ok, data = cv2.imencode(".png", encoding.encode(displacement_mm))
    if not ok:
        raise OSError("could not encode the displacement PNG")
    png.write(data.tobytes())
    info = dict(offset_mm=encoding.offset_mm, scale_mm=encoding.scale_mm,
                formula="mm = offset_mm + scale_mm * pixel value (16-bit)", size=int(displacement_mm.shape[0]),
                layout="texel (row r, column c) of the face model's UV layout, row 0 at v = 1 "
                       "(model/face/uv_layout.py); outward positive")
    info.update(extra or {})
    sidecar.write(json.dumps(info, indent=2) + "\n")


def read_displacement(png_path, sidecar_path):
    """[S, S] float64 mm from a displacement PNG and its sidecar (ValueError naming a bad file)."""
    import cv2

    with open(sidecar_path) as f:
        try:
            info = json.load(f)
            encoding = DisplacementEncoding(info["offset_mm"], info["scale_mm"])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError("%s: not a displacement sidecar (%s)" % (sidecar_path, error)) from error
    with open(png_path, "rb") as f:
        values = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_UNCHANGED)
    if values is None or values.dtype != np.uint16 or values.ndim != 2:
        raise ValueError("%s: not a one-channel 16-bit PNG" % png_path)
    return encoding.decode(values)


def png_bytes(image_uint8):
    """PNG bytes of an [H, W, 3] (or [H, W]) uint8 image (zlib level 1: a few times faster to write
    than the default level 6, files about a fifth larger)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image_uint8)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
