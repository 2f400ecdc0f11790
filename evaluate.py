"""Scores a checkpoint on annotated photos, synthetic faces with ground truth and NoW-style scans.

    python evaluate.py --photos DIR --output_dir OUT [--checkpoint results/release/coarse]
    python evaluate.py --tfrecords DIR --output_dir OUT
    python evaluate.py --scans DIR --output_dir OUT

Faces are reconstructed as test.py reconstructs them (model/inference.py, the same checkpoint, face
model and detector flags; the backbone from the checkpoint's stage config); every number comes from
model/metrics.py.

Inputs (any of them, together or alone):
  --photos DIR     every photo of DIR (model.inference.PHOTO_EXTENSIONS, any case) with an iBUG
                   landmark file <stem>.pts beside it (68 points; coordinates 1-based, the 300-W
                   convention: the centre of the top-left pixel is (1, 1)). Scored by landmark NME
                   (mean point-to-point error over the distance of the outer eye corners, points
                   36 and 45 of the annotation) overall and per region, in original photo pixels.
  --tfrecords DIR  synthetic records with ground truth (preprocess/synthesize.py): per-vertex error
                   after rigid alignment to the ground-truth shape (all vertices; face region =
                   skin, eyes, brows, nose, lips), landmark NME in the crop, each for the
                   reconstruction and for the mean face (zero coefficients); the normal-angle error
                   of the coarse surface against the ground-truth detailed surface (the shape with
                   its displacement map applied) over skin, brows, nose and lips. With a fine
                   checkpoint also (`score_fine_sample`): on the fine network's UV grid (a point
                   per detail-mask texel the camera sees), the normal-angle error of the coarse
                   and of the fine surface against the ground-truth detailed surface, and the RMS
                   error of the predicted displacement map against the ground-truth map beside
                   the ground truth's own RMS (the error of predicting zero).
  --scans DIR      NoW-style: per stem a photo <stem>.<ext>, a scan mesh <stem>.obj or <stem>.ply
                   (millimetres, cropped to the face) and its 7 landmarks <stem>_lmk7.txt (7 lines
                   `x y z`, mm) or <stem>.pp (MeshLab picked points, as NoW ships them), in the order
                   of model.metrics.NOW_LANDMARKS. Scored by the scan-to-mesh distance after rigid
                   landmark alignment and rigid ICP (model.metrics.scan_to_mesh_error); with a fine
                   checkpoint the detailed mesh is scored the same way too (key `fine`).
Writes into --output_dir:
  metrics.json         one section per input given (keys in README.md, "Evaluation")
  photos.csv, synthetic.csv, scans.csv   one row per scored sample
  <stem>_landmarks.txt the reconstructed 68 landmarks of each scored photo, as test.py writes them
  nme_regions.png      (--photos) bar chart of the mean NME per landmark region
  error_map.png        (--tfrecords, --scans) mean per-vertex error on the mean face, front and
                       side, with its scale in mm; one row per input (grey: no data)
Photos or scans without their annotation, without a face or unreadable are printed with the reason
and left out of `count`; for photos metrics.json also lists them under `skipped` (its scans section
has no such key). The exit status is 1 when an input scored nothing.
"""
import csv
import glob
import io
import json
import os
import sys
import xml.etree.ElementTree as ElementTree

import numpy as np
import tensorflow.compat.v1 as tf
from tqdm import tqdm

from model import inference, metrics, output_files
from model.data import make_dataset
from model.face import forward, landmarks68, unwrap
from model.face.uv_layout import texel_centres
from model.face.framing import CROP_SIZE
from model.fine import OWN_CHART_INSIDE
from preprocess import detail, schema
from preprocess.photo import SkippedPhoto

flags = tf.app.flags
FLAGS = flags.FLAGS


def define_flags():
    """Command-line flags, defined only when this file runs as a program (tests and benchmarks import
    it, and test.py defines the reconstruction flags too)."""
    flags.DEFINE_string("photos", "", "Folder of photos with iBUG .pts landmark files of the same stem.")
    flags.DEFINE_string("tfrecords", "", "Folder of tfrecords with ground truth (gt/*), e.g. synthetic faces.")
    flags.DEFINE_string("scans", "", "Folder in the NoW-style layout: a photo, a scan mesh and its 7 "
                        "landmarks per stem.")
    flags.DEFINE_string("output_dir", "results/evaluation", "Where metrics.json and the other results go.")
    inference.define_flags(flags)


# Vertex error regions: the face without neck, ears and scalp (what bench figures always used).
FACE_REGIONS = ("skin", "eyes", "brows", "nose", "lips")
# Normal error: the surface the detail layer covers (no eyes, no mouth interior).
DETAIL_REGIONS = ("skin", "brows", "nose", "lips")
SCAN_MESH_EXTENSIONS = (".obj", ".ply")
ERROR_MAP_SIZE = 360
NO_DATA_GREY = 0.75


class InputError(Exception):
    """An input folder or file that cannot be evaluated at all (the message names it)."""


def write_atomic(path, data):
    """Writes bytes or text to path through model/output_files, so a failed run never leaves a
    half-written file in place of a good one."""
    with output_files.replacing(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def csv_text(rows):
    """rows: list of dicts with the same keys -> CSV text with a header (floats to 6 digits)."""
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("%.6g" % v if isinstance(v, float) else v) for k, v in row.items()})
    return out.getvalue()


def file_beside(path, suffixes):
    """The first existing file <stem><suffix> next to `path` (suffix matched case-insensitively), or None."""
    folder, name = os.path.split(path)
    stem = os.path.splitext(name)[0]
    names = {entry.lower(): entry for entry in os.listdir(folder or ".")}
    for suffix in suffixes:
        entry = names.get((stem + suffix).lower())
        if entry is not None and os.path.isfile(os.path.join(folder, entry)):
            return os.path.join(folder, entry)
    return None


# ---------------------------------------------------------------------------------------- photos

def read_pts(path):
    """68 landmarks of an iBUG .pts file, as [68, 2] continuous 0-based pixels (pixel centres at +0.5).

    The file's coordinates are 1-based with pixel centres at integers (Matlab's convention, which
    300-W uses), so x_ours = x_pts - 0.5. Raises InputError naming the file if it is malformed.
    """
    try:
        with open(path) as f:
            lines = [line.strip() for line in f if line.strip()]
        header = dict(line.split(":", 1) for line in lines[:lines.index("{")] if ":" in line)
        body = lines[lines.index("{") + 1:lines.index("}")]
        points = np.array([[float(v) for v in line.split()] for line in body])
        declared = int(header.get("n_points", len(body)))
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise InputError("%s: not an iBUG .pts file (%s)" % (path, error)) from error
    if points.shape != (68, 2) or declared != 68 or not np.all(np.isfinite(points)):
        raise InputError("%s: expected 68 finite x y points, got %s (n_points %d)"
                         % (path, points.shape, declared))
    return points - 0.5


def evaluate_photos(reconstructor, folder, output_dir, detector, progress=True):
    """Landmark NME of every annotated photo in folder; writes <stem>_landmarks.txt for each.

    Returns:
      (section dict for metrics.json, per-photo CSV rows).
    """
    section = {"count": 0, "mean_nme": None, "skipped": {}, "per_photo": {}}
    rows = []
    for path in tqdm(inference.list_photos(folder), desc="photos", unit="photo", disable=not progress,
                     file=sys.stderr):
        name = os.path.basename(path)
        stem = os.path.splitext(name)[0]
        pts = file_beside(path, [".pts"])
        try:
            if stem in section["per_photo"]:
                raise SkippedPhoto("duplicate stem", "%s: a photo named %s.* was scored already" % (path, stem))
            if pts is None:
                raise SkippedPhoto("no landmark file", "%s: no landmark file %s.pts beside it" % (path, stem))
            try:
                target = read_pts(pts)
            except InputError as error:
                raise SkippedPhoto("bad landmark file", str(error)) from error
            _, _, landmarks = inference.reconstruct_photo_file(reconstructor, path, detector)
        except SkippedPhoto as skipped:
            section["skipped"][name] = skipped.reason
            tqdm.write("evaluate.py: skipped %s" % skipped, file=sys.stderr)
            continue
        inference.save_landmarks(os.path.join(output_dir, stem + "_landmarks.txt"), landmarks)
        nme = float(metrics.landmark_nme(landmarks, target))
        regions = {k: float(v) for k, v in metrics.landmark_nme_by_region(landmarks, target).items()}
        section["per_photo"][stem] = {"nme": nme, "regions": regions}
        rows.append(dict(photo=name, nme=nme, **regions))
    section["count"] = len(section["per_photo"])
    if section["count"]:
        section["mean_nme"] = float(np.mean([p["nme"] for p in section["per_photo"].values()]))
    return section, rows


def draw_region_chart(section, path):
    """Bar chart of the mean NME per landmark region (and overall) of the scored photos."""
    from matplotlib.figure import Figure

    names = list(landmarks68.GROUPS) + ["all"]
    per_photo = list(section["per_photo"].values())
    values = [np.mean([p["regions"][n] for p in per_photo]) for n in names[:-1]] + [section["mean_nme"]]
    figure = Figure(figsize=(6, 3.6), dpi=100)
    axes = figure.subplots()
    bars = axes.bar(names, values, color=["#4c72b0"] * (len(names) - 1) + ["#dd8452"])
    axes.bar_label(bars, fmt="%.3f")
    axes.set_ylabel("NME (outer-eye-corner distance)")
    axes.set_title("Landmark error by region, %d photo(s)" % section["count"])
    axes.set_ylim(0, max(values) * 1.2)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    write_atomic(path, buffer.getvalue())


# ---------------------------------------------------------------------------------------- synthetic

def region_mask(face_model, regions):
    """bool [N]: vertices in any of the named face model regions."""
    mask = np.zeros(face_model.num_vertices, bool)
    for region in regions:
        mask |= face_model.regions[region]
    return mask


def detailed_surface(face_model, shape, normals, displacement):
    """The ground-truth detailed surface of a synthetic sample, as preprocess/synthesize.py renders it:
    shape [N, 3] mm displaced along its unit vertex normals [N, 3] by displacement [S, S] (mm,
    sampled at the vertices' UVs). Returns [N, 3] mm, model frame."""
    offsets = detail.sample_map(displacement, face_model.uv)
    return np.asarray(shape, np.float64) + offsets[:, None] * np.asarray(normals, np.float64)


def ground_truth_graph(face_model, batch):
    """Graph ops of the ground truth of a batch of records: dict shape [B, N, 3] mm (identity +
    expression, what the coarse stage can represent), normals [B, N, 3], and mean_face_landmarks
    [68, 2] (crop pixels of zero coefficients), through the face model's one forward path."""
    parts = face_model.split_coefficients(batch[schema.GT_COEFFICIENTS])
    shape = face_model.shape(parts["identity"], parts["expression"])
    mean_face = forward.render_face(face_model, tf.zeros([1, face_model.coeff_size]), CROP_SIZE)
    return dict(shape=shape, normals=face_model.normals(shape), mean_face_landmarks=mean_face["landmarks"][0])


def nanmean(rows, key):
    """Mean of rows' `key` over the finite values (None when there are none)."""
    values = np.array([row[key] for row in rows], np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else None


def score_synthetic_sample(face_model, predicted, gt_shape, gt_detailed, predicted_landmarks,
                           gt_landmarks, face_mask, detail_mask):
    """Numbers of one reconstruction against its ground truth; see evaluate_synthetic."""
    all_errors = metrics.aligned_vertex_error(predicted, gt_shape)
    rotation, translation = metrics.kabsch(predicted[detail_mask], gt_detailed[detail_mask])
    aligned = metrics.apply_transform(predicted, rotation, translation)
    normal_mean, normal_median = metrics.normal_angle_error(aligned, gt_detailed, face_model.triangles,
                                                            detail_mask)
    return dict(vertex_error_mm=float(all_errors.mean()),
                face_region_vertex_error_mm=float(metrics.aligned_vertex_error(predicted, gt_shape,
                                                                               face_mask).mean()),
                landmark_nme=float(metrics.landmark_nme(predicted_landmarks, gt_landmarks)),
                normal_error_deg=normal_mean, normal_error_deg_median=normal_median,
                per_vertex=all_errors, rotation=rotation)


def resample_map(displacement, size):
    """A UV map [S', S'] (mm) at the map size S of the fine network. Both sizes share the face
    model's UV chart and a texel's centre is ((c + 0.5) / S, 1 - (r + 0.5) / S) at any size, so:
    the same map when S' = S; the mean of each k x k block when S' = k S (the block's centre is the
    coarser texel's: what a grid of that spacing can carry, without aliasing the finer detail);
    otherwise bilinear samples at the S x S texel centres (preprocess.detail.sample_map)."""
    displacement = np.asarray(displacement, np.float64)
    source = displacement.shape[0]
    if source == size:
        return displacement
    if source % size == 0:
        k = source // size
        return displacement.reshape(size, k, size, k).mean(axis=(1, 3))
    return detail.sample_map(displacement, texel_centres(size).reshape(-1, 2)).reshape(size, size)


def ground_truth_map_sum(files, size):
    """(sum [S, S] float64 of the records' gt/displacement maps at the network's map size S
    (`resample_map`), their count), read straight from the records: the template baseline's
    ingredients (`score_fine_sample`'s template_map)."""
    total, count = np.zeros((size, size)), 0
    for path in files:
        for record in tf.io.tf_record_iterator(path):
            feature = tf.train.Example.FromString(record).features.feature
            side = int(feature[schema.GT_DISPLACEMENT_SIZE].int64_list.value[0])
            values = np.asarray(feature[schema.GT_DISPLACEMENT].float_list.value, np.float64)
            total += resample_map(values.reshape(side, side), size)
            count += 1
    return total, count


def score_fine_sample(reconstructor, result, predicted_coarse, gt_shape, gt_displacement, rotation,
                      template_map=None):
    """The fine stage's numbers of one synthetic reconstruction.

    Both surfaces are compared on the fine network's UV grid (metrics.dense_surface: the layout's
    dense vertices, one per detail-mask texel): the prediction's from its fitted coarse mesh
    (zero displacement: the coarse surface; its predicted map: the fine one), the ground truth's
    from its shape and map, resampled to the network's map size when the record's differs
    (`resample_map`). The prediction's normals are turned by `rotation`, the rigid alignment of
    the coarse normal error (predicted vertices onto the ground-truth detailed ones over the detail
    regions), so both errors share one frame. Scored texels: the detail mask's texels that the
    unwrapping saw (visibility 1), for the normals and for the maps alike.

    Returns:
      dict: coarse_grid_normal_error_deg, fine_normal_error_deg (means over the scored texels),
      displacement_error_mm (RMS of predicted - ground-truth map), displacement_gt_rms_mm (RMS of
      the ground-truth map: the error of predicting zero), displacement_template_error_mm (RMS of
      template_map - ground-truth map, when a template [S, S] is given: the mean map of the other
      samples, what predicting the data's average detail for every face scores), scored_texels.
    """
    layout, triangles = reconstructor.layout, reconstructor.face_model.triangles
    size = layout.size
    gt_map = resample_map(gt_displacement, size)
    predicted_map = np.asarray(result["displacement"], np.float64).reshape(size, size)
    seen = np.asarray(result["visibility"]).reshape(size, size) > 0.5
    texels = layout.mask & seen
    scored = seen.reshape(-1)[layout.dense_texels]
    _, gt_normals = metrics.dense_surface(layout, gt_shape, triangles, gt_map, "normal")
    _, coarse_normals = metrics.dense_surface(layout, predicted_coarse, triangles)
    _, fine_normals = metrics.dense_surface(layout, predicted_coarse, triangles, predicted_map,
                                            reconstructor.config["displacement_direction"])

    def error(normals):
        if not scored.any():
            return float("nan")
        return float(metrics.normal_angles(normals[scored] @ rotation.T, gt_normals[scored]).mean())
    empty = not texels.any()
    return dict(coarse_grid_normal_error_deg=error(coarse_normals), fine_normal_error_deg=error(fine_normals),
                displacement_error_mm=float("nan") if empty else metrics.displacement_rms_error(
                    predicted_map, gt_map, texels),
                displacement_gt_rms_mm=float("nan") if empty else metrics.displacement_rms_error(
                    np.zeros_like(gt_map), gt_map, texels),
                displacement_template_error_mm=float("nan") if empty or template_map is None else
                metrics.displacement_rms_error(template_map, gt_map, texels),
                scored_texels=int(texels.sum()))


class OwnChartTargets(object):
    """The ground-truth detail in the chart of each reconstruction's own coarse face
    (model.face.unwrap.own_chart_target: the true detail at the pixel where each of its texels
    lands, what a fine network reading the photo through that face has to predict), one record at
    a time: __call__(gt coefficients [C], gt map [S', S'], texel positions [S, S, 2] crop pixels)
    -> (target [S, S] mm, inside [S, S] bool: the true face covers the texel's point)."""

    def __init__(self, face_model, num_coefficients, map_size, uv_size):
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.coeffs = tf.placeholder(tf.float32, [1, num_coefficients])
            self.map = tf.placeholder(tf.float32, [1, map_size, map_size])
            self.positions = tf.placeholder(tf.float32, [1, uv_size, uv_size, 2])
            target, inside = unwrap.own_chart_target(face_model, self.coeffs, self.map[..., tf.newaxis],
                                                     self.positions, CROP_SIZE)
            self.fetches = (target[0, ..., 0], inside[0, ..., 0] > OWN_CHART_INSIDE)
            self.session = tf.Session(graph=self.graph)
            self.graph.finalize()

    def __call__(self, coeffs, displacement, positions):
        return self.session.run(self.fetches, {self.coeffs: [coeffs], self.map: [displacement],
                                               self.positions: [positions]})


def own_chart_scores(predicted, targets, scored):
    """The own-chart displacement figures of a set of reconstructions: RMS over all scored texels
    of predicted - target (fine), of target (zero_prediction), and of the leave-one-out template
    (each face's target replaced by the mean of the OTHER faces' targets at texels they scored).

    Args:
      predicted, targets: [F, S, S] mm; scored: [F, S, S] bool (detail mask, seen by the coarse
        face, covered by the true one).
    Returns:
      dict fine, zero_prediction, mean_map_of_the_others (None without scored texels), scored_texels.
    """
    scored = np.asarray(scored, bool)
    if not scored.any():
        return dict(fine=None, zero_prediction=None, mean_map_of_the_others=None, scored_texels=0)
    targets = np.asarray(targets, np.float64)
    weight = scored.astype(np.float64)
    total, count = (targets * weight).sum(0), weight.sum(0)
    others = np.maximum(count[None] - weight, 1.0)
    template = (total[None] - targets * weight) / others
    template_ok = scored & (count[None] - weight > 0)

    def rms(values, where):
        return float(np.sqrt(np.mean(values[where] ** 2))) if where.any() else None
    return dict(fine=rms(np.asarray(predicted, np.float64) - targets, scored), zero_prediction=rms(targets, scored),
                mean_map_of_the_others=rms(template - targets, template_ok), scored_texels=int(scored.sum()))


def count_records(files):
    return sum(1 for f in files for _ in tf.io.tf_record_iterator(f))


def evaluate_synthetic(reconstructor, folder, progress=True):
    """Scores the reconstruction of every record in folder against its ground truth (gt/*).

    Returns:
      (section dict for metrics.json, per-sample CSV rows, mean per-vertex error [N] in mm of the
      reconstruction after rigid alignment).
    """
    files = sorted(glob.glob(os.path.join(folder, "*" + schema.SHARD_SUFFIX)))
    if not files:
        raise InputError("--tfrecords %s holds no *%s files" % (folder, schema.SHARD_SUFFIX))
    face_model = reconstructor.face_model
    is_fine = getattr(reconstructor, "stage", inference.COARSE_STAGE) == inference.FINE_STAGE
    face_mask = region_mask(face_model, FACE_REGIONS)
    detail_mask = region_mask(face_model, DETAIL_REGIONS)
    mean_shape = face_model.mean_shape.astype(np.float64)
    with tf.Graph().as_default():
        try:
            dataset = make_dataset(files, 16, augment=False, shuffle=False, repeat=False)
        except ValueError as error:
            raise InputError("--tfrecords %s: %s" % (folder, error)) from error
        batch = tf.data.make_one_shot_iterator(dataset).get_next()
        if schema.GT_COEFFICIENTS not in batch:
            raise InputError("--tfrecords %s: the records carry no ground truth (gt/*); photos are "
                             "scored with --photos" % folder)
        fetches = dict(batch, **{"truth/" + key: value for key, value in ground_truth_graph(face_model, batch).items()})
        session = tf.Session()
    rows = []
    error_sum = np.zeros(face_model.num_vertices)
    if is_fine:
        # The template baseline: each face scored against the mean map of the OTHER faces, so that
        # a face's own detail never helps it (leave one out).
        map_sum, map_count = ground_truth_map_sum(files, reconstructor.layout.size)
        own_chart, own_predicted, own_targets, own_scored = None, [], [], []
    bar = tqdm(total=count_records(files), desc="synthetic", unit="face", disable=not progress, file=sys.stderr)
    while True:
        try:
            values = session.run(fetches)
        except tf.errors.OutOfRangeError:
            break
        except tf.errors.InvalidArgumentError as error:    # a malformed record; the message names its file
            raise InputError("--tfrecords %s: %s" % (folder, error.message)) from error
        for i in range(len(values["image"])):
            # Fitting (--fit_steps) sees the records' landmarks and segmentation, as a photo's detected ones.
            result = reconstructor(np.round(values["image"][i] * 255.0).astype(np.uint8),
                                   values["landmarks"][i], values["segmentation"][i])
            gt_shape = values["truth/shape"][i].astype(np.float64)
            gt_detailed = detailed_surface(face_model, gt_shape, values["truth/normals"][i],
                                           values[schema.GT_DISPLACEMENT][i])
            row = {"source": values[schema.SOURCE_FILENAME][i].decode()}
            for prefix, vertices, landmarks in (("", result["vertices"], result["landmarks"]),
                                                ("mean_face_", mean_shape, values["truth/mean_face_landmarks"])):
                scores = score_synthetic_sample(face_model, np.asarray(vertices, np.float64), gt_shape,
                                                gt_detailed, landmarks, values["landmarks"][i],
                                                face_mask, detail_mask)
                if not prefix:
                    error_sum += scores["per_vertex"]
                row.update({prefix + key: value for key, value in scores.items()
                            if key not in ("per_vertex", "rotation")})
                if not prefix and is_fine:
                    own = resample_map(values[schema.GT_DISPLACEMENT][i], reconstructor.layout.size)
                    template = (map_sum - own) / (map_count - 1) if map_count > 1 else None
                    row.update(score_fine_sample(reconstructor, result, np.asarray(vertices, np.float64), gt_shape,
                                                 values[schema.GT_DISPLACEMENT][i], scores["rotation"], template))
                    if own_chart is None:
                        own_chart = OwnChartTargets(face_model, values[schema.GT_COEFFICIENTS].shape[1],
                                                    values[schema.GT_DISPLACEMENT].shape[1], reconstructor.layout.size)
                    target, inside = own_chart(values[schema.GT_COEFFICIENTS][i], values[schema.GT_DISPLACEMENT][i],
                                               result["texel_positions"])
                    size = reconstructor.layout.size
                    own_scored.append(reconstructor.layout.mask & inside
                                      & (np.asarray(result["visibility"]).reshape(size, size) > 0.5))
                    own_targets.append(target)
                    own_predicted.append(np.asarray(result["displacement"]).reshape(size, size))
                    error = np.asarray(own_predicted[-1], np.float64) - target
                    row["own_chart_displacement_error_mm"] = (
                        float(np.sqrt(np.mean(error[own_scored[-1]] ** 2))) if own_scored[-1].any() else float("nan"))
            rows.append(row)
            bar.update(1)
    bar.close()
    session.close()

    def mean(key):
        return float(np.mean([row[key] for row in rows]))

    section = {
        "count": len(rows),
        "vertex_error_mm": {"reconstruction": mean("vertex_error_mm"),
                            "mean_face": mean("mean_face_vertex_error_mm")},
        "face_region_vertex_error_mm": {"reconstruction": mean("face_region_vertex_error_mm"),
                                        "mean_face": mean("mean_face_face_region_vertex_error_mm")},
        "landmark_nme": {"reconstruction": mean("landmark_nme"), "mean_face": mean("mean_face_landmark_nme")},
        # Coarse checkpoint: the coarse surface's error at the face model's vertices only.
        "normal_error_deg": {"coarse": mean("normal_error_deg")},
    }
    if is_fine:
        # On the fine network's UV grid, visible detail-mask texels (score_fine_sample); "coarse"
        # above stays the vertex-level figure a coarse checkpoint reports.
        section["normal_error_deg"].update(coarse_detail_grid=nanmean(rows, "coarse_grid_normal_error_deg"),
                                           fine=nanmean(rows, "fine_normal_error_deg"))
        section["displacement_error_mm"] = {"fine": nanmean(rows, "displacement_error_mm"),
                                            "zero_prediction": nanmean(rows, "displacement_gt_rms_mm"),
                                            "mean_map_of_the_others": nanmean(rows, "displacement_template_error_mm")}
        # The same figures in each reconstruction's own chart (OwnChartTargets), pooled over texels.
        section["displacement_error_mm_own_chart"] = own_chart_scores(own_predicted, own_targets, own_scored)
        section["uv_size"] = reconstructor.layout.size
    return section, rows, error_sum / max(len(rows), 1)


# ---------------------------------------------------------------------------------------- scans

def read_scan_landmarks(path):
    """[7, 3] mm from `<stem>_lmk7.txt` (7 lines `x y z`) or a MeshLab `.pp` file (its <point>s in
    file order). InputError naming the file if it does not hold 7 points."""
    try:
        if path.lower().endswith(".pp"):
            points = np.array([[float(p.get(axis)) for axis in "xyz"]
                               for p in ElementTree.parse(path).getroot().iter("point")])
        else:
            points = np.loadtxt(path, ndmin=2)
    except (OSError, ValueError, TypeError, ElementTree.ParseError) as error:
        raise InputError("%s: unreadable scan landmarks (%s)" % (path, error)) from error
    if points.shape != (len(metrics.NOW_LANDMARKS), 3) or not np.all(np.isfinite(points)):
        raise InputError("%s: expected 7 points x y z, got an array of shape %s" % (path, points.shape))
    return points


def read_scan_points(path):
    """Scan vertices [P, 3] of an OBJ or PLY mesh; InputError naming the file if there are none."""
    import igl

    try:
        vertices, _ = igl.read_triangle_mesh(path)
    except (RuntimeError, ValueError) as error:
        raise InputError("%s: unreadable scan mesh (%s)" % (path, error)) from error
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) < 3:
        raise InputError("%s: unreadable scan mesh (no vertices)" % path)
    return vertices


def barycentric(points, corners):
    """Barycentric coordinates [P, 3] of points [P, 3] lying in triangles corners [P, 3, 3]."""
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    ab, ac, ap = b - a, c - a, points - a
    d00, d01, d11 = np.sum(ab * ab, 1), np.sum(ab * ac, 1), np.sum(ac * ac, 1)
    d20, d21 = np.sum(ap * ab, 1), np.sum(ap * ac, 1)
    denominator = np.maximum(d00 * d11 - d01 * d01, 1e-20)
    v = (d11 * d20 - d01 * d21) / denominator
    w = (d00 * d21 - d01 * d20) / denominator
    return np.clip(np.stack([1.0 - v - w, v, w], axis=1), 0.0, 1.0)


def evaluate_scans(reconstructor, folder, detector, progress=True):
    """NoW-style scan-to-mesh distance of the reconstruction of every photo in folder with a scan.

    Returns:
      (section dict for metrics.json, per-scan CSV rows, skipped {file: reason}, mean distance [N]
      in mm per mesh vertex (each scan point counts for the corners of its nearest triangle,
      weighted by its barycentric coordinates there; NaN where no scan point counts)).
    """
    face_model = reconstructor.face_model
    triangles = face_model.triangles
    landmark_vertices = face_model.landmarks68[list(metrics.NOW_LANDMARKS)]
    rows, distances, fine_distances, skipped = [], [], [], {}
    error_sum = np.zeros(face_model.num_vertices)
    error_count = np.zeros(face_model.num_vertices)
    for path in tqdm(inference.list_photos(folder), desc="scans", unit="scan", disable=not progress,
                     file=sys.stderr):
        name = os.path.basename(path)
        stem = os.path.splitext(name)[0]
        mesh_path = file_beside(path, SCAN_MESH_EXTENSIONS)
        landmarks_path = file_beside(path, ["_lmk7.txt", ".pp"])
        try:
            if mesh_path is None or landmarks_path is None:
                missing = [what for what, found in (("scan mesh %s.obj|.ply" % stem, mesh_path),
                                                    ("scan landmarks %s_lmk7.txt|.pp" % stem, landmarks_path))
                           if found is None]
                raise SkippedPhoto("no scan", "%s: no %s beside it" % (path, " and no ".join(missing)))
            try:
                scan_landmarks = read_scan_landmarks(landmarks_path)
                scan = read_scan_points(mesh_path)
            except InputError as error:
                raise SkippedPhoto("bad scan", str(error)) from error
            _, result, _ = inference.reconstruct_photo_file(reconstructor, path, detector)
        except SkippedPhoto as skip:
            skipped[name] = skip.reason
            tqdm.write("evaluate.py: skipped %s" % skip, file=sys.stderr)
            continue
        vertices = np.asarray(result["vertices"], np.float64)
        scored = metrics.scan_to_mesh_error(scan, scan_landmarks, vertices, triangles,
                                            vertices[landmark_vertices])
        row = dict(photo=name, scan=os.path.basename(mesh_path), points=len(scan),
                   median_mm=scored["median_mm"], mean_mm=scored["mean_mm"], std_mm=scored["std_mm"])
        if "detailed_vertices" in result:
            # The fine stage's detailed mesh: its first N vertices are the coarse ones, so the same
            # landmark vertices; aligned on its own (landmarks, then ICP against the detailed surface).
            detailed = np.asarray(result["detailed_vertices"], np.float64)
            fine_scored = metrics.scan_to_mesh_error(scan, scan_landmarks, detailed,
                                                     reconstructor.detailed_triangles, detailed[landmark_vertices])
            fine_distances.append(fine_scored["distances"])
            row.update(fine_median_mm=fine_scored["median_mm"], fine_mean_mm=fine_scored["mean_mm"],
                       fine_std_mm=fine_scored["std_mm"])
        aligned = metrics.apply_transform(vertices, scored["rotation"], scored["translation"])
        corners = triangles[scored["triangle_ids"]]
        weights = barycentric(scored["closest"], aligned[corners])
        for k in range(3):
            np.add.at(error_sum, corners[:, k], weights[:, k] * scored["distances"])
            np.add.at(error_count, corners[:, k], weights[:, k])
        distances.append(scored["distances"])
        rows.append(row)

    def statistics(collected):
        # As NoW: the statistics of all scan points of all scans together.
        if not collected:
            return {"median_mm": None, "mean_mm": None, "std_mm": None}
        everything = np.concatenate(collected)
        return {"median_mm": float(np.median(everything)), "mean_mm": float(everything.mean()),
                "std_mm": float(everything.std())}

    section = dict(count=len(rows), **statistics(distances))
    if getattr(reconstructor, "stage", None) == inference.FINE_STAGE:
        section["fine"] = statistics(fine_distances)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_vertex = np.where(error_count > 0, error_sum / error_count, np.nan)
    return section, rows, skipped, per_vertex


# ---------------------------------------------------------------------------------------- error map

def render_error_views(face_model, per_vertex_mm, vmax_mm, size=ERROR_MAP_SIZE):
    """The mean face coloured by per_vertex_mm [N] (NaN = no data, grey), front and side (yaw 90
    degrees), lightly shaded; returns uint8 [2, size, size, 3] over white."""
    import renderer
    from matplotlib import colormaps

    rgb = colormaps["turbo"](np.clip(np.nan_to_num(per_vertex_mm) / vmax_mm, 0.0, 1.0))[:, :3]
    rgb[~np.isfinite(per_vertex_mm)] = NO_DATA_GREY
    coeffs = np.zeros((2, face_model.coeff_size), np.float32)
    pose = face_model.coefficient_slices()["pose"].start
    coeffs[1, pose + 1] = np.pi / 2
    with tf.Graph().as_default():
        out = forward.render_face(face_model, tf.constant(coeffs), size, cull_backfaces=True)
        shade = 0.55 + 0.45 * tf.maximum(out["normals"][..., 2:3], 0.0)
        colours = tf.constant(np.stack([rgb, rgb]).astype(np.float32)) * shade
        image = renderer.interpolate(colours, face_model.triangles, out["rasterized"]) + (1.0 - out["mask"])
        with tf.Session() as session:
            images = session.run(image)
    return np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)


def draw_error_map(face_model, maps, path):
    """One row per (title, per_vertex_mm [N]) of `maps`: front and side views and a scale bar in mm."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.2, 3.4 * len(maps)), dpi=100)
    axes = figure.subplots(len(maps), 2, squeeze=False)
    for row, (title, per_vertex) in enumerate(maps):
        finite = per_vertex[np.isfinite(per_vertex)]
        # The scale ends at the 99th percentile so that a few outliers do not wash the map out.
        vmax = float(np.percentile(finite, 99)) if len(finite) else 1.0
        vmax = vmax if vmax > 0 else 1.0
        views = render_error_views(face_model, per_vertex, vmax)
        for column, label in enumerate(("front", "side")):
            axes[row, column].imshow(views[column])
            axes[row, column].set_axis_off()
            axes[row, column].set_title(label, fontsize=9)
        bar = figure.colorbar(ScalarMappable(Normalize(0.0, vmax), colormaps["turbo"]), ax=list(axes[row]),
                              fraction=0.05, pad=0.02)
        bar.set_label("mm")
        axes[row, 0].text(0.0, 1.12, title, transform=axes[row, 0].transAxes, fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    write_atomic(path, buffer.getvalue())


# ---------------------------------------------------------------------------------------- table

def print_table(results, scans_skipped):
    """The printed summary of metrics.json's sections (and the skipped scans, which it has no key for)."""
    photos = results.get("photos")
    if photos is not None:
        print("photos: %d scored, %d skipped; landmark NME (outer-eye-corner distance)"
              % (photos["count"], len(photos["skipped"])))
        names = list(landmarks68.GROUPS)
        print("  %-24s %7s " % ("photo", "NME") + " ".join("%7s" % n for n in names))
        for stem, scores in photos["per_photo"].items():
            print("  %-24s %7.4f " % (stem[:24], scores["nme"])
                  + " ".join("%7.4f" % scores["regions"][n] for n in names))
        if photos["count"]:
            print("  %-24s %7.4f" % ("mean", photos["mean_nme"]))
        for name, reason in photos["skipped"].items():
            print("  skipped %s: %s" % (name, reason))
    synthetic = results.get("synthetic")
    if synthetic is not None:
        print("synthetic: %d faces                       reconstruction   mean face" % synthetic["count"])
        for key, label in (("vertex_error_mm", "vertex error, all (mm)"),
                           ("face_region_vertex_error_mm", "vertex error, face region (mm)"),
                           ("landmark_nme", "landmark NME (crop)")):
            print("  %-40s %10.4f %11.4f" % (label, synthetic[key]["reconstruction"], synthetic[key]["mean_face"]))
        print("  %-40s %10.4f" % ("normal error, coarse (deg)", synthetic["normal_error_deg"]["coarse"]))
        if "fine" in synthetic["normal_error_deg"]:
            def number(value):
                return "%10.4f" % value if value is not None else "%10s" % "n/a"
            print("  on the %d x %d detail grid, visible texels:" % (synthetic["uv_size"], synthetic["uv_size"]))
            print("  %-40s %s" % ("normal error, coarse (deg)", number(synthetic["normal_error_deg"]["coarse_detail_grid"])))
            print("  %-40s %s" % ("normal error, fine (deg)", number(synthetic["normal_error_deg"]["fine"])))
            print("  %-40s %s" % ("displacement RMS error, fine (mm)", number(synthetic["displacement_error_mm"]["fine"])))
            print("  %-40s %s" % ("displacement RMS, ground truth (mm)",
                                  number(synthetic["displacement_error_mm"]["zero_prediction"])))
            print("  %-40s %s" % ("displacement RMS error, others' mean map",
                                  number(synthetic["displacement_error_mm"]["mean_map_of_the_others"])))
            own = synthetic.get("displacement_error_mm_own_chart")
            if own is not None:
                print("  in each coarse face's own chart (the true detail where the photo shows it):")
                print("  %-40s %s" % ("displacement RMS error, fine (mm)", number(own["fine"])))
                print("  %-40s %s" % ("displacement RMS, ground truth (mm)", number(own["zero_prediction"])))
                print("  %-40s %s" % ("displacement RMS error, others' mean map", number(own["mean_map_of_the_others"])))
    scans = results.get("scans")
    if scans is not None:
        print("scans: %d scored, %d skipped" % (scans["count"], len(scans_skipped)))
        if scans["count"]:
            print("  scan-to-mesh (mm): median %.3f  mean %.3f  std %.3f"
                  % (scans["median_mm"], scans["mean_mm"], scans["std_mm"]))
            if "fine" in scans:
                print("  detailed mesh (mm): median %.3f  mean %.3f  std %.3f"
                      % (scans["fine"]["median_mm"], scans["fine"]["mean_mm"], scans["fine"]["std_mm"]))
        for name, reason in scans_skipped.items():
            print("  skipped %s: %s" % (name, reason))


def check_folder(flag, value):
    if value and not os.path.isdir(value):
        raise InputError("--%s=%s is not a folder" % (flag, value))


def main(argv):
    if len(argv) > 1:
        sys.exit("evaluate.py: unexpected arguments %s (flags are --name=value)" % " ".join(argv[1:]))
    if not (FLAGS.photos or FLAGS.tfrecords or FLAGS.scans):
        sys.exit("evaluate.py: give at least one of --photos, --tfrecords, --scans (folders)")
    try:
        for flag in ("photos", "tfrecords", "scans"):
            check_folder(flag, getattr(FLAGS, flag))
        reconstructor = inference.reconstructor_from_flags(FLAGS)
    except (InputError, OSError, ValueError) as error:
        sys.exit("evaluate.py: %s" % error)
    output = FLAGS.output_dir
    os.makedirs(output, exist_ok=True)
    results, error_maps, scans_skipped = {}, [], {}
    try:
        if FLAGS.photos:
            results["photos"], rows = evaluate_photos(reconstructor, FLAGS.photos, output, FLAGS.detector)
            write_atomic(os.path.join(output, "photos.csv"), csv_text(rows))
            if rows:
                draw_region_chart(results["photos"], os.path.join(output, "nme_regions.png"))
        if FLAGS.tfrecords:
            results["synthetic"], rows, per_vertex = evaluate_synthetic(reconstructor, FLAGS.tfrecords)
            write_atomic(os.path.join(output, "synthetic.csv"), csv_text(rows))
            if rows:
                error_maps.append(("synthetic: mean per-vertex error after rigid alignment, %d faces"
                                   % len(rows), per_vertex))
        if FLAGS.scans:
            results["scans"], rows, scans_skipped, per_vertex = evaluate_scans(
                reconstructor, FLAGS.scans, FLAGS.detector)
            write_atomic(os.path.join(output, "scans.csv"), csv_text(rows))
            if rows:
                error_maps.append(("scans: mean scan-to-mesh distance, %d scans (grey: no scan point)"
                                   % len(rows), per_vertex))
    except InputError as error:
        sys.exit("evaluate.py: %s" % error)
    if error_maps:
        draw_error_map(reconstructor.face_model, error_maps, os.path.join(output, "error_map.png"))
    write_atomic(os.path.join(output, "metrics.json"), json.dumps(results, indent=2) + "\n")
    print_table(results, scans_skipped)
    print("evaluate.py: wrote %s" % os.path.join(output, "metrics.json"))
    empty = [name for name, section in results.items() if section["count"] == 0]
    if empty:
        sys.exit("evaluate.py: nothing scored in %s" % ", ".join(empty))


if __name__ == "__main__":
    tf.disable_eager_execution()
    define_flags()
    tf.app.run(main)
