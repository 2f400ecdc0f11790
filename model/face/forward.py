"""The one forward path for a face: coefficients -> mesh -> camera -> clip space -> image.

    coefficients [B, C] (+ vertex_displacement [B, N] mm)
      --FaceModel--> vertices mm (model frame), albedo                  (`face_mesh`)
      --CropCamera, pose--> normals (camera frame), colours (SH light), crop pixels, clip space
      --renderer--> render [B, S, S, 3], mask, any extra per-vertex attributes   (`render_mesh`)

Coarse training and inference (model/coarse.py), synthesis (preprocess/synthesize.py), the face
model preview (resources/preview_face_model.py) and the builder's frontal renders all render
through `render_mesh`; the first three reach it from coefficients through `render_face`, so ground
truth and prediction never differ by code path.

A UV displacement map (synthetic ground truth, the fine stage) enters in `face_mesh` with its
UVLayout (model/face/uv_layout.py): the layout's dense grid mesh, a vertex per mask texel, is
displaced along the coarse normals and replaces the coarse triangles inside the detail mask. The
mesh then holds the N coarse vertices first (so the landmark vertex ids stay valid) and the dense
vertices after them, with its own shading normals (UVLayout.detail_normals: smooth coarse
normals plus what the displacement changes, not the dense grid's faceted ones).
"""
import numpy as np
import tensorflow.compat.v1 as tf

import renderer
from renderer import shading


def face_mesh(face_model, coeffs, vertex_displacement=None, displacement_map=None, layout=None):
    """The face of coefficient vectors in the model frame, before the camera.

    Args:
      face_model: model.face.FaceModel.
      coeffs: [B, coeff_size] float32 (identity | expression | albedo | pose | light).
      vertex_displacement: None, or [B, N] float32 mm along the outward normals of the coarse
        (undisplaced) mesh, sampled at the vertices.
      displacement_map: None, or [B, S, S] / [B, S, S, 1] float32 mm (outward positive) in the
        layout of `layout` (a model.face.uv_layout.UVLayout of size S): drawn on the layout's
        dense mesh (see the module docstring). Not combined with vertex_displacement.
    Returns:
      dict: vertices [B, V, 3] mm, triangles [T, 3], albedo [B, V, 3] in [0, 1], normals
      [B, V, 3] model-frame shading normals or None (then render_mesh computes them), and the
      coefficient parts identity, expression, albedo_coeffs, pose [B, 6], light [B, 27].
      V = N, or N + layout.num_dense_vertices with a displacement map (coarse vertices first).
    """
    if displacement_map is not None and (layout is None or vertex_displacement is not None):
        raise ValueError("a displacement_map needs its layout and no vertex_displacement")
    parts = face_model.split_coefficients(coeffs)
    vertices = face_model.shape(parts["identity"], parts["expression"])
    albedo = face_model.albedo(parts["albedo"])
    triangles, normals = face_model.triangles, None
    if vertex_displacement is not None:
        vertex_displacement = tf.convert_to_tensor(vertex_displacement, tf.float32)
        vertices = vertices + vertex_displacement[..., tf.newaxis] * face_model.normals(vertices)
    if displacement_map is not None:
        coarse_normals = shading.vertex_normals(vertices, face_model.triangles)
        base = layout.dense_from_vertices(vertices)
        dense = layout.displaced_dense_vertices(vertices, coarse_normals,
                                                tf.convert_to_tensor(displacement_map, tf.float32))
        dense_normals = layout.detail_normals(
            base, dense, tf.math.l2_normalize(layout.dense_from_vertices(coarse_normals), axis=-1))
        triangles = np.concatenate([layout.coarse_triangles_outside,
                                    layout.dense_triangles + face_model.num_vertices]).astype(np.int32)
        normals = tf.concat([coarse_normals, dense_normals], axis=1)
        albedo = tf.concat([albedo, layout.dense_from_vertices(albedo)], axis=1)
        vertices = tf.concat([vertices, dense], axis=1)
    return dict(vertices=vertices, triangles=triangles, albedo=albedo, normals=normals,
                identity=parts["identity"], expression=parts["expression"],
                albedo_coeffs=parts["albedo"], pose=parts["pose"], light=parts["light"])


def render_mesh(camera, vertices, triangles, pose, image_size, albedo=None, light=None, colours=None,
                attributes=None, background=None, cull_backfaces=False, normals=None):
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
      normals: None (area-weighted vertex normals of the mesh) or [B, N, 3] unit model-frame
        shading normals (face_mesh's, for a mesh with a dense detail part).
    Returns:
      dict: normals [B, N, 3] unit, camera frame; colours [B, N, C]; points_px [B, N, 3]
      (u, v, depth) pixels; clip [B, N, 4]; render [B, S, S, C]; mask [B, S, S, 1] coverage;
      rasterized (renderer.Rasterized); attributes [B, S, S, K] when attributes are given.
    """
    if (colours is None) == (albedo is None or light is None):
        raise ValueError("render_mesh needs either colours or albedo and light")
    rotation = camera.rotation(pose)
    if normals is None:
        normals = shading.vertex_normals(vertices, triangles)
    # Fused ops (renderer/camera.py): the rotation of the normals, and camera.project then
    # camera.to_clip in one op, equal to those TensorFlow formulations to rounding.
    normals = renderer.camera.rotate(normals, rotation)
    if colours is None:
        colours = shading.sh_shading(normals, albedo, light)
    points_px, clip = camera.project_to_clip(vertices, pose, image_size, rotation=rotation)
    rendered = renderer.render(clip, triangles, colours, (image_size, image_size), background=background,
                               cull_backfaces=cull_backfaces)
    outputs = dict(normals=normals, colours=colours, points_px=points_px, clip=clip,
                   render=rendered["image"], mask=rendered["mask"], rasterized=rendered["rasterized"])
    if attributes is not None:
        outputs["attributes"] = renderer.interpolate(attributes, triangles, rendered["rasterized"])
    return outputs


def render_face(face_model, coeffs, image_size, vertex_displacement=None, attributes=None, background=None,
                cull_backfaces=False, displacement_map=None, layout=None):
    """Coefficients -> the rendered face and everything computed on the way.

    Args:
      face_model: model.face.FaceModel.
      coeffs: [B, coeff_size] float32.
      image_size: side S of the square render in pixels.
      vertex_displacement, displacement_map, layout, attributes, background, cull_backfaces: see
        `face_mesh` and `render_mesh` (attributes are per vertex of the mesh face_mesh returns:
        with a displacement map, extend coarse ones with layout.dense_from_vertices).
    Returns:
      dict: `face_mesh` (vertices mm, model frame; albedo; coefficient parts) and `render_mesh`
      (normals camera frame, colours, points_px, clip, render, mask, rasterized, attributes),
      plus landmarks [B, 68, 2] (u, v) pixels of the S x S render.
    """
    outputs = face_mesh(face_model, coeffs, vertex_displacement, displacement_map, layout)
    outputs.update(render_mesh(face_model.camera, outputs["vertices"], outputs["triangles"], outputs["pose"],
                               image_size, albedo=outputs["albedo"], light=outputs["light"],
                               attributes=attributes, background=background, cull_backfaces=cull_backfaces,
                               normals=outputs["normals"]))
    outputs["landmarks"] = face_model.landmarks(outputs["points_px"])
    return outputs
