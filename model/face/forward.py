"""The one forward path for a face: coefficients -> mesh -> camera -> clip space -> image.

    coefficients [B, C] (+ vertex_displacement [B, N] mm)
      --FaceModel--> vertices mm (model frame), albedo                  (`face_mesh`)
      --CropCamera, pose--> normals (camera frame), colours (SH light), crop pixels, clip space
      --renderer--> render [B, S, S, 3], mask, any extra per-vertex attributes   (`render_mesh`)

Coarse training and inference (model/coarse.py), synthesis (preprocess/synthesize.py), the face
model preview (resources/preview_face_model.py) and the builder's frontal renders all render
through `render_mesh`; the first three reach it from coefficients through `render_face`, so ground
truth and prediction never differ by code path.

The fine stage's UV displacement map enters in `face_mesh`: the map, sampled at the mesh (per
model vertex, or on the dense UV-grid mesh of model/face/uv_layout.py, which then also supplies
that mesh's triangles), displaces the coarse vertices along their normals; everything after
`face_mesh` takes any mesh (`render_face` reads the landmarks at the model's landmark vertex ids,
so a dense mesh must keep the coarse vertices at their indices or supply its own landmark ids).
"""
import tensorflow.compat.v1 as tf

import renderer
from renderer import shading


def face_mesh(face_model, coeffs, vertex_displacement=None):
    """The face of coefficient vectors in the model frame, before the camera.

    Args:
      face_model: model.face.FaceModel.
      coeffs: [B, coeff_size] float32 (identity | expression | albedo | pose | light).
      vertex_displacement: None, or [B, N] float32 mm along the outward normals of the coarse
        (undisplaced) mesh (the synthetic data's detail layer, sampled at the vertices).
    Returns:
      dict: vertices [B, N, 3] mm (displaced when a displacement is given), triangles [T, 3],
      albedo [B, N, 3] in [0, 1], and the coefficient parts identity, expression, albedo_coeffs,
      pose [B, 6], light [B, 27].
    """
    parts = face_model.split_coefficients(coeffs)
    vertices = face_model.shape(parts["identity"], parts["expression"])
    if vertex_displacement is not None:
        vertex_displacement = tf.convert_to_tensor(vertex_displacement, tf.float32)
        vertices = vertices + vertex_displacement[..., tf.newaxis] * face_model.normals(vertices)
    return dict(vertices=vertices, triangles=face_model.triangles, albedo=face_model.albedo(parts["albedo"]),
                identity=parts["identity"], expression=parts["expression"],
                albedo_coeffs=parts["albedo"], pose=parts["pose"], light=parts["light"])


def render_mesh(camera, vertices, triangles, pose, image_size, albedo=None, light=None, colours=None,
                attributes=None, background=None, cull_backfaces=False):
    """A mesh in the model frame seen through a crop camera, shaded and rasterized.

    Args:
      camera: model.face.camera.CropCamera (a FaceModel's `camera`, or a framing of one's own).
      vertices: [B, N, 3] float32 mm, model frame; triangles: [T, 3] int32, counter-clockwise
        seen from the front.
      pose: [B, 6] float32 (model/face/camera.py).
      image_size: side S of the square image in pixels (pose translations are in 300-crop pixels).
      albedo, light: [B, N, 3] and [B, 27]: colours = albedo x SH irradiance of the camera-frame
        normals (renderer.shading.sh_shading). Or:
      colours: [B, N, C] float32 drawn as they are (no shading); exactly one of colours and
        albedo + light.
      attributes: None, or [B, N, K] float32 per-vertex values interpolated on the same
        rasterization (no background), e.g. one-hot segmentation labels.
      background: None (zeros) or [B, S, S, C] float32 behind the render.
      cull_backfaces: drop triangles facing away from the camera.
    Returns:
      dict: normals [B, N, 3] unit, camera frame; colours [B, N, C]; points_px [B, N, 3]
      (u, v, depth) pixels; clip [B, N, 4]; render [B, S, S, C]; mask [B, S, S, 1] coverage;
      rasterized (renderer.Rasterized); attributes [B, S, S, K] when attributes are given.
    """
    if (colours is None) == (albedo is None or light is None):
        raise ValueError("render_mesh needs either colours or albedo and light")
    rotation = camera.rotation(pose)
    normals = tf.matmul(shading.vertex_normals(vertices, triangles), rotation, transpose_b=True)
    if colours is None:
        colours = shading.sh_shading(normals, albedo, light)
    points_px = camera.project(vertices, pose, image_size)
    clip = camera.to_clip(points_px, image_size)
    rendered = renderer.render(clip, triangles, colours, (image_size, image_size), background=background,
                               cull_backfaces=cull_backfaces)
    outputs = dict(normals=normals, colours=colours, points_px=points_px, clip=clip,
                   render=rendered["image"], mask=rendered["mask"], rasterized=rendered["rasterized"])
    if attributes is not None:
        outputs["attributes"] = renderer.interpolate(attributes, triangles, rendered["rasterized"])
    return outputs


def render_face(face_model, coeffs, image_size, vertex_displacement=None, attributes=None, background=None,
                cull_backfaces=False):
    """Coefficients -> the rendered face and everything computed on the way.

    Args:
      face_model: model.face.FaceModel.
      coeffs: [B, coeff_size] float32.
      image_size: side S of the square render in pixels.
      vertex_displacement, attributes, background, cull_backfaces: see `face_mesh` and
        `render_mesh`.
    Returns:
      dict: `face_mesh` (vertices mm, model frame; albedo; coefficient parts) and `render_mesh`
      (normals camera frame, colours, points_px, clip, render, mask, rasterized, attributes),
      plus landmarks [B, 68, 2] (u, v) pixels of the S x S render.
    """
    outputs = face_mesh(face_model, coeffs, vertex_displacement)
    outputs.update(render_mesh(face_model.camera, outputs["vertices"], outputs["triangles"], outputs["pose"],
                               image_size, albedo=outputs["albedo"], light=outputs["light"],
                               attributes=attributes, background=background, cull_backfaces=cull_backfaces))
    outputs["landmarks"] = face_model.landmarks(outputs["points_px"])
    return outputs
