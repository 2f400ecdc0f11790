"""A contact sheet of synthetic samples (PNG), to look at what the training data looks like.

    python preprocess/contact_sheet.py --out docs/synthetic_samples.png --num 16 --seed 0 --tile 128

Each tile is one sample of preprocess/synthesize.py at the default appearance options (or
--plain: the options all off, the data as it was before them), with its landmarks drawn as dots
when --landmarks is given.
"""
import dataclasses
import os
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
from absl import app, flags
from PIL import Image

FLAGS = flags.FLAGS


def contact_sheet(samples, columns, tile, landmarks=False, segmentation=False):
    """uint8 image of the samples' images in a grid of `columns`, each resized to `tile`."""
    rows = (len(samples) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * tile, rows * tile))
    for i, sample in enumerate(samples):
        image = sample["image"].copy()
        if segmentation:
            palette = np.array([[0, 0, 0], [230, 180, 150], [200, 120, 90], [60, 60, 255],
                                [120, 60, 20], [220, 40, 60], [90, 0, 40], [0, 220, 0]], np.uint8)
            image = (0.5 * image + 0.5 * palette[sample["segmentation"]]).astype(np.uint8)
        if landmarks:
            for x, y in sample["landmarks"].round().astype(int):
                image[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2] = (0, 255, 0)
        picture = Image.fromarray(image).resize((tile, tile), Image.LANCZOS)
        sheet.paste(picture, ((i % columns) * tile, (i // columns) * tile))
    return sheet


def main(argv):
    del argv
    from model.face import FaceModel
    from preprocess import appearance, synthesize
    options = appearance.AppearanceOptions.plain() if FLAGS.plain else appearance.AppearanceOptions()
    if FLAGS.expression:
        options = dataclasses.replace(options, expression=FLAGS.expression)
    renderer = synthesize.SampleRenderer(FaceModel(), map_size=FLAGS.map_size, options=options)
    renderer.sample(synthesize.sample_rng(FLAGS.seed + 1, 0))  # warm up
    start = time.time()
    samples = [renderer.sample(synthesize.sample_rng(FLAGS.seed, i)) for i in range(FLAGS.num)]
    print("%.3f s per face" % ((time.time() - start) / FLAGS.num))
    sheet = contact_sheet(samples, FLAGS.columns, FLAGS.tile, FLAGS.landmarks, FLAGS.segmentation)
    if FLAGS.colours:
        palette = sheet.quantize(FLAGS.colours, method=Image.Quantize.MEDIANCUT)
        sheet = sheet.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)
    sheet.save(FLAGS.out, optimize=True)
    print("wrote %s (%d bytes)" % (FLAGS.out, os.path.getsize(FLAGS.out)))


if __name__ == "__main__":
    flags.DEFINE_string("out", "docs/synthetic_samples.png", "Output PNG.")
    flags.DEFINE_integer("num", 16, "Samples.", lower_bound=1)
    flags.DEFINE_integer("seed", 0, "Seed of the samples.", lower_bound=0)
    flags.DEFINE_integer("columns", 4, "Tiles per row.", lower_bound=1)
    flags.DEFINE_enum("expression", "", ["", "gaussian", "units"],
                      "Expression draw (synthesize.py --expression); empty: the options' default.")
    flags.DEFINE_integer("tile", 150, "Tile side in pixels.", lower_bound=16)
    flags.DEFINE_integer("map_size", 256, "Displacement map size.", lower_bound=16)
    flags.DEFINE_integer("colours", 256, "Palette size of the PNG (0: full RGB).", lower_bound=0,
                         upper_bound=256)
    flags.DEFINE_bool("plain", False, "All appearance options off (the data as before them).")
    flags.DEFINE_bool("landmarks", False, "Draw the landmarks.")
    flags.DEFINE_bool("segmentation", False, "Blend the segmentation labels in.")
    app.run(main)
