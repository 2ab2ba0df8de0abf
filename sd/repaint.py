"""Background repainting (Gen4Gen step 3): masks, start images, prompts, file lists, annotations.

Pure PIL/numpy helpers that know nothing about diffusion models, shared by
`s3_background_repainting.py`, the notebook and the tests.

Mask convention (the project's, see data/masks.py, and diffusers'): 1 / white = repaint,
0 / black = keep. A step-2 composition mask is the opposite (white on the objects), so
`repaint_mask` inverts it.
"""
import csv
import os
import random
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from data.images import load_image  # torch-free: the s3 script checks its inputs without torch
from utils.errors import InputError
from utils.files import atomic_write

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
ANN_HEADER = ("directory", "image_name", "background_prompt")

# CLIP reads at most 77 tokens, so a short negative prompt is applied in full where Gen4Gen's
# 60-term list was silently truncated; these are its terms that matter for a background.
NEGATIVE_PROMPT = ("semi-realistic, cgi, 3d, render, sketch, cartoon, drawing, anime, text, "
                   "watermark, cropped, out of frame, worst quality, low quality, jpeg artifacts, "
                   "blurry, deformed, ugly, duplicate")

# Scene folder name -> background phrase of the prompt. Gen4Gen hard-codes the phrases its LLM
# wrote in step 2 the same way; an unknown name falls back to "in the <name>" (`scene_phrase`).
SCENE_PHRASES = {
    "garden": "in a garden", "garden-lake": "in a garden with a lake", "park": "in a park",
    "lake": "by a lake", "pond": "by a pond", "river": "by a river", "beach": "on the beach",
    "sea": "by the sea", "ocean": "by the ocean", "harbor": "in a harbor", "sand": "on the sand",
    "mountain": "in the mountains", "mountains": "in the mountains", "hill": "on a hill",
    "forest": "in a forest", "jungle": "in the jungle", "woods": "in the woods",
    "meadow": "on a meadow", "field": "in a field", "grass": "on the grass",
    "grasslands": "on the grasslands", "farm": "on a farm", "pasture": "on a pasture",
    "countryside": "in the countryside", "savannah": "on the savannah", "desert": "in the desert",
    "snow": "in the snow", "sky": "in the sky", "galaxy": "in the galaxy", "city": "in the city",
    "street": "on a city street", "sidewalk": "on the sidewalk", "playground": "at a playground",
    "zoo": "at the zoo", "room": "in a room", "living-room": "in a living room",
    "bedroom": "in a bedroom", "kitchen": "in a kitchen", "office": "in an office",
    "cafe": "in a cafe", "museum": "in a museum", "gallery": "in a gallery",
    "laboratory": "in a laboratory", "gym": "in a gym", "airport": "at an airport",
    "aquarium": "in an aquarium", "underwater": "under water", "coral-reef": "on a coral reef",
}


# --- Prompts ------------------------------------------------------------------------------------
def scene_phrase(scene: str) -> str:
    """Background phrase of a scene folder: "garden" -> "in a garden", "old_mill" -> "in the
    old mill"."""
    key = re.sub(r"[\s_]+", "-", scene.strip().lower())
    return SCENE_PHRASES.get(key, f"in the {key.replace('-', ' ')}")


def objects_from_dirname(name: str) -> list:
    """Objects of a step-2 folder name: "1_cat+dog+houseplant" -> ["cat", "dog", "houseplant"]."""
    match = re.fullmatch(r"\d+_(.+)", name)
    return match.group(1).split("+") if match else []


def object_phrase(objects) -> str:
    """["cat", "dog", "houseplant"] -> "a cat, a dog and a houseplant" (a/an by first letter)."""
    words = [o.replace("_", " ").strip() for o in objects if o.strip()]
    words = [w if re.match(r"(a|an|the|some|two|three)\s", w)
             else ("an " if w[0].lower() in "aeiou" else "a ") + w for w in words]
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def build_caption(objects, background: str) -> str:
    """Full prompt, e.g. "a realistic photo of a cat, a dog and a houseplant in a garden"."""
    subject = object_phrase(objects)
    parts = ("a realistic photo", f"of {subject}" if subject else "", background.strip())
    return " ".join(p for p in parts if p)


# --- Masks and start images ---------------------------------------------------------------------
def repaint_mask(object_mask: Image.Image, size: int, blur_size: int = 5) -> np.ndarray:
    """Object mask (white = object) -> (size, size) float32 in [0, 1], 1 = repaint (background).

    As in Gen4Gen: box-blur by `blur_size`, then stretch 127.5..255 to 0..1 (skimage
    `rescale_intensity`), which keeps the blurred ramp inside the object outline so the border is
    repainted softly instead of leaving a halo; then invert and resize.
    """
    fg = object_mask.convert("L")
    if blur_size >= 1:
        fg = fg.filter(ImageFilter.BoxBlur(blur_size))
        fg = np.clip((np.asarray(fg, np.float32) - 127.5) / 127.5, 0.0, 1.0)
    else:
        fg = np.asarray(fg, np.float32) / 255.0
    mask = Image.fromarray(1.0 - fg, mode="F")
    if mask.size != (size, size):
        mask = mask.resize((size, size), Image.BILINEAR)
    return np.clip(np.asarray(mask, np.float32), 0.0, 1.0)


def mask_to_image(mask: np.ndarray) -> Image.Image:
    """Float mask in [0, 1] -> 8-bit "L" image, the form diffusers pipelines take."""
    return Image.fromarray(np.round(mask * 255).astype(np.uint8), mode="L")


def load_rgb(path, size: int) -> np.ndarray:
    """(size, size, 3) uint8 image (any mode, EXIF-upright: data.images.load_image); a non-square one is
    center-cropped rather than stretched."""
    image = load_image(path)
    if image.size != (size, size):
        image = ImageOps.fit(image, (size, size), Image.BICUBIC)
    return np.asarray(image)


def photo_start(path, size: int) -> np.ndarray:
    """Background photo as a start image: slightly blurred (radius 1, as Gen4Gen), size x size."""
    image = load_image(path).filter(ImageFilter.GaussianBlur(radius=1))
    return np.asarray(ImageOps.fit(image, (size, size), Image.BICUBIC))


def noise_start(size: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform RGB noise start image (`--noise-bkg`)."""
    return rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)


def composite(objects: np.ndarray, background: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """objects * (1 - mask) + background * mask, uint8; where mask == 0 the objects are exact."""
    m = mask[..., None]
    out = objects.astype(np.float32) * (1.0 - m) + background.astype(np.float32) * m
    return np.where(m == 0, objects, np.clip(np.round(out), 0, 255).astype(np.uint8))


# --- Files --------------------------------------------------------------------------------------
def list_images(folder) -> list:
    """Image files directly in `folder`, sorted by name."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def find_compositions(src_dir) -> list:
    """[(img path, mask path or None)] for every `img_*` image of a step-2 folder."""
    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise InputError(f"--src-dir {src_dir} is not a folder: pass a step-2 composition folder "
                         "such as data/examples/s2_object_compositions/1_dog+rabbit+flower")
    files = list_images(src_dir)
    masks = {p.stem: p for p in files if p.name.startswith("mask")}
    pairs = [(p, masks.get("mask" + p.stem[3:])) for p in files if p.name.startswith("img")]
    if not pairs:
        raise InputError(f"--src-dir {src_dir} holds no img_*.png compositions (with their "
                         "mask_*.png): pass a step-2 composition folder")
    return pairs


def find_scenes(bkg_dirs) -> list:
    """[(scene name, [photos])]: every folder under each `--bkg-dir` that holds images.

    `backgrounds/` gives one scene per sub-folder; `backgrounds/garden` (the document's example)
    is itself one scene.
    """
    scenes = []
    for bkg_dir in map(Path, bkg_dirs):
        if not bkg_dir.is_dir():
            raise InputError(f"--bkg-dir {bkg_dir} is not a folder: pass a folder of scene "
                             "folders (backgrounds/) or one scene folder (backgrounds/garden)")
        for root, dirs, _ in os.walk(bkg_dir):
            dirs.sort()  # walk order, hence the picks below, must not depend on the file system
            photos = list_images(root)
            if photos:
                scenes.append((Path(root).name, photos))
    if not scenes:
        raise InputError(f"--bkg-dir {' '.join(map(str, bkg_dirs))}: no images found (expected "
                         "backgrounds/<scene>/*.jpg)")
    return scenes


def pick_backgrounds(scenes, max_per_scene: int, seed: int) -> list:
    """[(scene, photo)]: up to `max_per_scene` random photos per scene, fixed by `seed`."""
    rng = random.Random(seed)
    return [(name, photo) for name, photos in scenes
            for photo in sorted(rng.sample(photos, min(max_per_scene, len(photos))))]


def output_name(stem: str, k: int, caption: str) -> str:
    """Gen4Gen's file name `<stem>_repaint-id_<k:06d>+<caption>.png`, made file-system safe."""
    safe = re.sub(r'[\\/:*?"<>|\0]', "-", caption)[:180]  # 255-byte name limit
    return f"{stem}_repaint-id_{k:06d}+{safe}.png"


# --- Annotations --------------------------------------------------------------------------------
def read_annotations(path) -> dict:
    """image_name -> row of an existing annotation CSV ({} when there is none)."""
    path = Path(path)
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {row["image_name"]: row for row in csv.DictReader(f) if row.get("image_name")}


def write_annotations(path, rows) -> None:
    """Write rows (dicts with ANN_HEADER keys) atomically: an interrupted run leaves a whole CSV."""
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=ANN_HEADER, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    atomic_write(path, write)
