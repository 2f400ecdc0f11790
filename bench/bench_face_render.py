"""The whole differentiable face render, ours against the same render written with tf_mesh_renderer.

    python bench/bench_face_render.py [--batch 16] [--size 224] [--repeats 10] [--threads N] [--top N]

One render: coefficients [B, C] of the embedded face model -> vertices, normals, SH-shaded
colours, clip space -> rasterize -> interpolate the colours -> photometric loss against a fixed
target image (masked by coverage); forward = the loss, forward+backward = the loss and its
gradient with respect to the coefficients. Two pipelines, in one graph and one session (same
mesh, image size and threads):

  ours      model.face.forward.render_face, the product's one forward path (fused vertex-normal
            and SH-shading ops, fused camera ops: the normals' rotation and the projection to
            clip space, our rasterizer, fused interpolation op);
  upstream  as a tf_mesh_renderer user writes it: the face model's steps with normals and shading
            in plain TensorFlow ops (tests/tf_reference, the code before the fused ops),
            upstream's rasterizer (mesh-renderer==1.4, built by
            bench/upstream_rasterizer.py; one op per image as its wrapper does, rows flipped to
            our top-down order), and interpolation by gathers as its mesh_renderer.py does
            (tests/tf_reference.interpolate_tf), and the photometric loss in plain TensorFlow ops
            (tests/tf_reference.photometric_loss_tf; ours is the fused op, model.losses).

The two take turns, repeat by repeat, so that a change of the machine's load falls on both. Prints
ms per image (medians of wall and of process CPU time), the agreement of the two renders and
gradients, the speedups, and as the last line speedup_render_fwd_bwd=<upstream / ours, wall>.
"""
import argparse
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow.compat.v1 as tf  # noqa: E402

from bench import upstream_rasterizer  # noqa: E402
from model import losses  # noqa: E402
from model.face import FaceModel, forward  # noqa: E402
from renderer import camera  # noqa: E402
from tests.tf_reference import interpolate_tf, photometric_loss_tf, sh_shading_tf, vertex_normals_tf  # noqa: E402

tf.disable_eager_execution()


def render_ours(face_model, coeffs, size):
    """(image [B, S, S, 3], coverage [B, S, S, 1]) through our ops: the product's own path."""
    outputs = forward.render_face(face_model, coeffs, size)
    return outputs["render"], outputs["mask"]


def render_upstream(face_model, coeffs, size):
    """(image, coverage) as a tf_mesh_renderer user computes them: render_face's steps
    with normals and shading in plain TensorFlow ops, upstream's rasterizer, gather interpolation."""
    parts = face_model.split_coefficients(coeffs)
    triangles = tf.constant(face_model.triangles)
    vertices = face_model.shape(parts["identity"], parts["expression"])
    points_px = face_model.camera.project(vertices, parts["pose"], size)
    rotation = camera.euler_rotation(parts["pose"][:, :3])
    normals = tf.matmul(vertex_normals_tf(vertices, triangles), rotation, transpose_b=True)
    colours = sh_shading_tf(normals, face_model.albedo(parts["albedo"]), parts["light"])
    clip = face_model.camera.to_clip(points_px, size)
    barycentrics, triangle_ids, _ = upstream_rasterizer.rasterize(clip, triangles, (size, size))
    # Upstream's row 0 is the bottom of the image; ours is the top.
    barycentrics, triangle_ids = tf.reverse(barycentrics, [1]), tf.reverse(triangle_ids, [1])
    image = interpolate_tf(colours, triangles, triangle_ids, barycentrics)
    coverage = tf.cast(tf.reduce_sum(barycentrics, -1, keepdims=True) > 0.0, tf.float32)
    return image, coverage


def random_coefficients(face_model, batch, rng):
    """Plausible faces: shape and albedo within a standard deviation, small poses, mild light."""
    parts = [rng.normal(0, 0.5, (batch, face_model.k_id)), rng.normal(0, 0.5, (batch, face_model.k_exp)),
             rng.normal(0, 0.5, (batch, face_model.k_tex)),
             np.concatenate([rng.uniform(-0.3, 0.3, (batch, 3)), rng.uniform(-5, 5, (batch, 2)),
                             rng.uniform(-0.1, 0.1, (batch, 1))], 1),
             rng.normal(0, 0.1, (batch, 27))]
    return np.concatenate(parts, 1).astype(np.float32)


def print_top_nodes(session, fetch, count, batch, repeats):
    """The `count` nodes of `fetch`'s graph with the most op time (start to end, summed over
    `repeats` traced runs), ms per image, and the summed op time of all."""
    totals = {}
    for _ in range(repeats):
        metadata = tf.RunMetadata()
        session.run(fetch, options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE), run_metadata=metadata)
        for device in metadata.step_stats.dev_stats:
            for node in device.node_stats:
                totals[node.node_name] = totals.get(node.node_name, 0) + node.op_end_rel_micros - node.op_start_rel_micros
    scale = 1e-3 / (repeats * batch)
    print("ours, forward+backward: summed op time %.2f ms/image; the %d most expensive nodes:"
          % (sum(totals.values()) * scale, count))
    for name, micros in sorted(totals.items(), key=lambda item: -item[1])[:count]:
        print("  %7.3f ms/image  %s" % (micros * scale, name))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow intra/inter-op threads (0: default)")
    parser.add_argument("--top", type=int, default=0,
                        help="also print the N nodes of our forward+backward with the most op time (step stats)")
    args = parser.parse_args()
    if min(args.batch, args.size, args.repeats) <= 0:
        sys.exit("bench_face_render.py: --batch, --size and --repeats must be positive")
    try:
        upstream_rasterizer.load()
    except upstream_rasterizer.UpstreamUnavailable as error:
        sys.exit("bench_face_render.py: upstream tf_mesh_renderer unavailable: %s" % error)

    rng = np.random.default_rng(0)
    face_model = FaceModel()
    config = tf.ConfigProto(intra_op_parallelism_threads=args.threads, inter_op_parallelism_threads=args.threads)
    with tf.Graph().as_default(), tf.Session(config=config) as session:
        coeffs = tf.Variable(random_coefficients(face_model, args.batch, rng), name="coefficients")
        target = tf.constant(rng.uniform(size=(args.batch, args.size, args.size, 3)).astype(np.float32))
        pipelines = {}
        for name, render, loss_of in (("ours", render_ours, losses.photometric_loss),
                                      ("upstream", render_upstream, photometric_loss_tf)):
            with tf.name_scope(name):
                image, coverage = render(face_model, coeffs, args.size)
                loss = loss_of(target, image, coverage)
                gradient = tf.gradients(loss, coeffs)[0]
            pipelines[name] = dict(image=image, coverage=coverage, loss=loss, gradient=gradient)
        session.run(tf.global_variables_initializer())

        values = {name: session.run(p) for name, p in pipelines.items()}
        both_covered = values["ours"]["coverage"] * values["upstream"]["coverage"]
        image_difference = np.abs(values["ours"]["image"] - values["upstream"]["image"]) * both_covered
        coverage_difference = np.mean(values["ours"]["coverage"] != values["upstream"]["coverage"])
        ours_gradient, upstream_gradient = values["ours"]["gradient"], values["upstream"]["gradient"]
        gradient_difference = np.abs(ours_gradient - upstream_gradient).max() / np.abs(upstream_gradient).max()
        print("face render: %d vertices, %d triangles; batch %d; image %dx%d; coverage %.1f%% of pixels"
              % (face_model.num_vertices, len(face_model.triangles), args.batch, args.size, args.size,
                 100 * values["ours"]["coverage"].mean()))
        print("agreement: coverage differs on %.3f%% of pixels; colour on pixels both cover: max %.2e, mean %.2e; "
              "loss %.6f vs %.6f; gradient max difference %.2e of its largest entry"
              % (100 * coverage_difference, image_difference.max(), image_difference.sum() / both_covered.sum(),
                 values["ours"]["loss"], values["upstream"]["loss"], gradient_difference))

        fetches = {(name, kind): p[kind] for name, p in pipelines.items() for kind in ("loss", "gradient")}
        for fetch in fetches.values():
            session.run(fetch)
        timings = {key: ([], []) for key in fetches}
        for _ in range(args.repeats):
            for key, fetch in fetches.items():
                start_wall, start_cpu = time.perf_counter(), time.process_time()
                session.run(fetch)
                timings[key][0].append(time.perf_counter() - start_wall)
                timings[key][1].append(time.process_time() - start_cpu)
        if args.top > 0:
            print_top_nodes(session, pipelines["ours"]["gradient"], args.top, args.batch, args.repeats)
    per_image = {key: [1e3 * float(np.median(t)) / args.batch for t in pair] for key, pair in timings.items()}
    label = "threads %s" % (args.threads or "default")
    for name in pipelines:
        forward, both = per_image[(name, "loss")], per_image[(name, "gradient")]
        print("[%s] %-8s forward %.2f ms/image (cpu %.2f)   forward+backward %.2f ms/image (cpu %.2f)"
              % (label, name, forward[0], forward[1], both[0], both[1]))
    ratio = {kind: [u / o for u, o in zip(per_image[("upstream", kind)], per_image[("ours", kind)])]
             for kind in ("loss", "gradient")}
    print("[%s] speedup forward: wall %.2f, cpu %.2f;  forward+backward: wall %.2f, cpu %.2f"
          % (label, ratio["loss"][0], ratio["loss"][1], ratio["gradient"][0], ratio["gradient"][1]))
    print("last line: upstream / ours, whole face render forward+backward, same session, %s, wall-clock medians"
          % label)
    print("speedup_render_fwd_bwd=%.2f" % ratio["gradient"][0])


if __name__ == "__main__":
    main()
