"""Build the small, freely licensed image data shipped with the repository.

Everything comes from Debian packages (bookworm).  To reproduce::

    mkdir -p /tmp/debs && cd /tmp/debs
    apt-get download mate-backgrounds lomiri-wallpapers-16.04 tuxpaint-stamps-default \\
        tuxpaint-data lxqt-themes sddm-theme-maldives
    for d in *.deb; do p=${d%%_*}; mkdir -p x/$p; dpkg -x $d x/$p; done
    cd /work/main   # repository root
    python tools/build_embedded_data.py /tmp/debs/x/*

(Extracting every package into one folder works too; pass that folder.
tuxpaint-stamps-default is a ~160 MB download.  Never add images from
plasma-workspace-wallpapers: it is reserved for independent evaluation.)
Versions used: mate-backgrounds 1.26.0-1, lomiri-wallpapers-16.04 20.04.0-2,
tuxpaint-stamps-default 2022.06.04-1, tuxpaint-data 1:0.9.28-sdl2-1,
lxqt-themes 1.2.0-1, sddm-theme-maldives 0.19.0-5.  (Checked and not used:
lomiri-wallpapers-20.04 and ukui-wallpapers, gnome-backgrounds 43.1,
sway-backgrounds, xfdesktop4-data, lxde-common: rendered/abstract art or a
person; tuxtype-data's landscape photos: "featured images from Wikimedia
Commons" without authors or licences; gcompris-qt-data: animal portraits.)

Outputs (relative to --out, default: the repository root):

* data/scenery/{train,test}/*.jpg  natural-scenery photos, long side <= 512
* backgrounds/<scene>/<scene>N.jpg  photos for background repainting
* data/examples/s2_object_compositions/<n>_<obj>+.../img_0001xx.png and
  mask_0001xx.png: cut-out objects pasted on a plain canvas (512x512 RGB
  image, 'L' mask: 255 on the objects, 0 elsewhere)
* CREDITS.md next to each of the three data sets.

Selection, authors and licences are hand-checked against each package's
usr/share/doc/<pkg>/copyright; the script re-checks that every source file
is named there (except for the packages in CREDITED_ELSEWHERE).
"""
import argparse
import gzip
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

LOM16, MATE, TUX = "lomiri-wallpapers-16.04", "mate-backgrounds", "tuxpaint-stamps-default"
TUXD, LXQT, MALDIVES = "tuxpaint-data", "lxqt-themes", "sddm-theme-maldives"
BG_L, BG_M = "usr/share/backgrounds/", "usr/share/backgrounds/mate/nature/"
STAMPS = "usr/share/tuxpaint/stamps/"
TUX_T, TUX_S = "usr/share/tuxpaint/templates/", "usr/share/tuxpaint/starters/"
LXQT_W = "usr/share/lxqt/wallpapers/"
# Packages whose copyright file covers the used images only through 'Files: *':
CREDITED_ELSEWHERE = {
    TUX: "copyright 'Files: *': Bill Kendrick, GPL-2+",
    # Templates: listed by title under Bill Kendrick in AUTHORS.txt.gz; starters
    # reef / skyline-sf-dusk: NOAA public domain, in AUTHORS.txt.gz and starters/*.txt.
    TUXD: "copyright 'Files: *' (GPL-2+) + doc/tuxpaint-data/AUTHORS.txt.gz",
    # Debian copyright: 'Files: *' LGPL-2.1+ (LXQt team); the wallpapers' own
    # usr/share/lxqt/wallpapers/License: CC-BY-SA-3.0, photos credited to stefonarch.
    LXQT: "usr/share/lxqt/wallpapers/License",
}
AITZOL = ("Aitzol Berasategi (2018)", "CC-BY-4.0")
BARBIN = ("Charles Barbin (2008)", "GPL-2+")
KENDRICK = ("Bill Kendrick (Tux Paint)", "GPL-2+")
NOAA_PD = "public domain (NOAA photo)"
STEFONARCH = ("stefonarch (LXQt project)", "CC-BY-SA-3.0")
TUX_AUTHOR = "Tux Paint project: copyright file credits only Bill Kendrick (2002-2022), see note"
TUX_LIC = "GPL-2+"

# key: (package, path inside package, author, licence)
PHOTOS = {
    "aitzgorri": (LOM16, BG_L + "aitzgorri_by_Aitzol_Berasategi.jpg", *AITZOL),
    "life": (LOM16, BG_L + "life_by_Aitzol_Berasategi.jpg", *AITZOL),
    "picos": (LOM16, BG_L + "picosdeeuropa_by_Aitzol_Berasategi.jpg", *AITZOL),
    "sunset": (LOM16, BG_L + "sunset_by_Aitzol_Berasategi.jpg", *AITZOL),
    "seeding": (LOM16, BG_L + "seeding_by_Clements_Engelhardt.jpg",
                "Clemens Engelhardt (2018)", "CC0-1.0"),
    "dragonfly": (LOM16, BG_L + "Dragonfly_by_Bolly.jpg", '"Bolly" (2018)', "CC-BY-SA-4.0"),
    "blinds": (MATE, BG_M + "Blinds.jpg",
               "Lennart Poettering; Andrea Cimitan (2008)", "GPL-2+"),
    "dune": (MATE, BG_M + "Dune.jpg", "Marco Cogoni (2007); Hylke Bons (2008)", "GPL-2+"),
    "freshflower": (MATE, BG_M + "FreshFlower.jpg", "Jens Ansorg (2005)", "GPL-2+"),
    "garden": (MATE, BG_M + "Garden.jpg", *BARBIN),
    "ladybird": (MATE, BG_M + "LadyBird.jpg", *BARBIN),
    "yellowflower": (MATE, BG_M + "YellowFlower.jpg", *BARBIN),
    "greenmeadow": (MATE, BG_M + "GreenMeadow.jpg",
                    "Timothy Schellhase (2005); Lapo Calamandrei (2008)", "GPL-2+"),
    "raindrops": (MATE, BG_M + "RainDrops.jpg", '"blackcombwhistler07" (2008)', "GPL-2+"),
    "storm": (MATE, BG_M + "Storm.jpg", "Sergey Nazarov (2008)", "GPL-2+"),
    "twowings": (MATE, BG_M + "TwoWings.jpg", "Charles Barbin; Hylke Bons (2008)", "GPL-2+"),
    "cliff": (TUXD, TUX_T + "cliff.jpg", *KENDRICK),
    "corn": (TUXD, TUX_T + "corn_maze.jpg", *KENDRICK),
    "mossylog": (TUXD, TUX_T + "mossy_log.jpg", *KENDRICK),
    "mudstone": (TUXD, TUX_T + "mudstone.jpg", *KENDRICK),
    "splash": (TUXD, TUX_T + "ocean_splash.jpg", *KENDRICK),
    "waves": (TUXD, TUX_T + "ocean_waves.jpg", *KENDRICK),
    "redwoods": (TUXD, TUX_T + "redwoods_above.jpg", *KENDRICK),
    "pebbles": (TUXD, TUX_T + "rocks.jpg", *KENDRICK),
    "sheep": (TUXD, TUX_T + "sheep.jpg", *KENDRICK),
    "sunclouds": (TUXD, TUX_T + "sun_behind_clouds.jpg", *KENDRICK),
    "sunleaves": (TUXD, TUX_T + "sun_behind_leaves.jpg", *KENDRICK),
    "treesabove": (TUXD, TUX_T + "trees_above.jpg", *KENDRICK),
    "treesdusk": (TUXD, TUX_T + "trees_at_dusk.jpg", *KENDRICK),
    "reef": (TUXD, TUX_S + "reef-back.png", "Thomas K. Gibson, NOAA (reef2583)", NOAA_PD),
    "baydusk": (TUXD, TUX_S + "skyline-sf-dusk-back.jpeg",
                "Rich Bourgerie, NOAA (line1989)", NOAA_PD),
    "beam": (LXQT, LXQT_W + "beam.png", *STEFONARCH),
    "fog": (LXQT, LXQT_W + "fog.jpg", *STEFONARCH),
    "afterrain": (LXQT, LXQT_W + "after-the-rain.jpg", *STEFONARCH),
    "notwindows": (LXQT, LXQT_W + "this-is-not-windows.jpg", *STEFONARCH),
    "flowers": (LXQT, LXQT_W + "flowers.png", *STEFONARCH),
    "appleflower": (LXQT, LXQT_W + "appleflower.png", *STEFONARCH),
    "drop": (LXQT, LXQT_W + "drop.png", *STEFONARCH),
    "butterfly": (LXQT, LXQT_W + "butterfly.png", *STEFONARCH),
    "maldives": (MALDIVES, "usr/share/sddm/themes/maldives/background.jpg",
                 "Nevit Dilmen (2008)", "CC-BY-3.0"),
}
# data/scenery: output name -> photo key.  Test = 6 varied, fixed photos.
SCENERY_TRAIN = {
    "lomiri_aitzgorri_meadow": "aitzgorri", "lomiri_mountain_sunset": "sunset",
    "lomiri_dandelion_field": "seeding", "lomiri_dragonfly_foliage": "dragonfly",
    "mate_storm_sky": "storm", "mate_green_leaf": "blinds",
    "mate_orange_flower": "freshflower", "mate_garden_marigold": "garden",
    "mate_leaf_raindrops": "raindrops", "mate_dandelion_seeds": "twowings",
    "tuxpaint_rock_cliff": "cliff", "tuxpaint_corn_rows": "corn",
    "tuxpaint_mossy_log": "mossylog", "tuxpaint_mudstone": "mudstone",
    "tuxpaint_ocean_splash": "splash", "tuxpaint_ocean_waves": "waves",
    "tuxpaint_redwoods_above": "redwoods", "tuxpaint_pebble_beach": "pebbles",
    "tuxpaint_sheep_pasture": "sheep", "tuxpaint_sun_behind_clouds": "sunclouds",
    "tuxpaint_sun_behind_leaves": "sunleaves", "tuxpaint_trees_above": "treesabove",
    "tuxpaint_trees_at_dusk": "treesdusk", "tuxpaint_coral_reef": "reef",
    "tuxpaint_bay_sunset": "baydusk",
    "lxqt_sunbeam_hills": "beam", "lxqt_fog_field": "fog", "lxqt_sunset_clouds": "afterrain",
    "lxqt_green_hills": "notwindows", "lxqt_wildflower_meadow": "flowers",
    "lxqt_apple_blossom": "appleflower", "lxqt_grass_dewdrop": "drop",
    "lxqt_butterfly_flower": "butterfly",
    "sddm_maldives_lagoon": "maldives",
}
SCENERY_TEST = {
    "lomiri_picos_mountains": "picos", "lomiri_forest_stream": "life",
    "mate_dune_grass_sea": "dune", "mate_ladybird_flowers": "ladybird",
    "mate_yellow_flower": "yellowflower", "mate_green_meadow": "greenmeadow",
}
BACKGROUNDS = {
    "garden": ["garden", "ladybird", "yellowflower"],
    "mountain": ["picos", "aitzgorri", "sunset"],
    "forest": ["life", "dragonfly"],
    "meadow": ["seeding", "greenmeadow"],
    "beach": ["dune"],
}
OBJECTS = {  # name -> path inside tuxpaint-stamps-default
    "dog": STAMPS + "animals/mammals/dogs/dog.png",
    "rabbit": STAMPS + "animals/mammals/rodents/rabbit-2.png",
    "flower": STAMPS + "plants/flowers/daffodil.png",
    "squirrel": STAMPS + "animals/mammals/rodents/squirrel.png",
    "mushroom": STAMPS + "plants/mushrooms/cep.png",
    "kettle": STAMPS + "household/kettle.png",
}
# folder -> list of (canvas grey level, [(object, long side px, centre x, centre y)])
COMPOSITIONS = {
    "1_dog+rabbit+flower": [
        (255, [("dog", 250, 140, 300), ("rabbit", 190, 390, 390), ("flower", 170, 380, 130)]),
        (128, [("dog", 200, 390, 320), ("rabbit", 150, 120, 410), ("flower", 210, 150, 140)]),
    ],
    "2_squirrel+mushroom+kettle": [
        (255, [("squirrel", 230, 150, 140), ("mushroom", 220, 380, 320), ("kettle", 160, 120, 400)]),
        (128, [("squirrel", 180, 390, 410), ("mushroom", 170, 130, 150), ("kettle", 210, 380, 140)]),
    ],
}
CANVAS, MAX_SIDE = 512, 512


def find(roots, pkg, relpath):
    """Locate relpath of package pkg in one of the extracted folders."""
    for root in roots:
        if (root / relpath).is_file() and (root / "usr/share/doc" / pkg).is_dir():
            copyright_text = (root / "usr/share/doc" / pkg / "copyright").read_text()
            if pkg not in CREDITED_ELSEWHERE and Path(relpath).name not in copyright_text:
                raise SystemExit(f"{relpath} is not named in {pkg}'s copyright file")
            return root / relpath
    raise SystemExit(f"{relpath} of package {pkg} not found in {roots}")


def version(roots, pkg):
    for root in roots:
        log = root / "usr/share/doc" / pkg / "changelog.Debian.gz"
        if log.is_file():
            with gzip.open(log, "rt") as f:
                return re.search(r"\(([^)]+)\)", f.readline()).group(1)
    raise SystemExit(f"no changelog.Debian.gz for {pkg}")


def save_photo(src, dst):
    """Resize (long side <= 512, never upscale) and save as JPEG q90 without metadata."""
    im = Image.open(src)
    im.draft("RGB", (2 * MAX_SIDE, 2 * MAX_SIDE))  # fast JPEG DCT downscale, still >= 2x
    im = ImageOps.exif_transpose(im).convert("RGB")
    scale = MAX_SIDE / max(im.size)
    if scale < 1:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
    clean = Image.new("RGB", im.size)
    clean.paste(im)  # fresh image: no EXIF / ICC / comments carried over
    dst.parent.mkdir(parents=True, exist_ok=True)
    clean.save(dst, "JPEG", quality=90)


def compose(roots, grey, placements):
    img = np.full((CANVAS, CANVAS, 3), grey, np.uint8)
    mask = np.zeros((CANVAS, CANVAS), bool)
    for name, side, cx, cy in placements:
        obj = Image.open(find(roots, TUX, OBJECTS[name])).convert("RGBA")
        obj = obj.crop(obj.getchannel("A").point(lambda a: 255 * (a > 127)).getbbox())
        s = side / max(obj.size)
        obj = obj.resize((round(obj.width * s), round(obj.height * s)), Image.LANCZOS)
        x0, y0 = cx - obj.width // 2, cy - obj.height // 2
        assert x0 >= 0 and y0 >= 0 and x0 + obj.width <= CANVAS and y0 + obj.height <= CANVAS, name
        arr = np.asarray(obj)
        m = arr[..., 3] > 127
        region = (slice(y0, y0 + obj.height), slice(x0, x0 + obj.width))
        overlap = (mask[region] & m).sum() / m.sum()
        assert overlap < 0.05, f"{name} overlaps earlier objects ({overlap:.0%})"
        img[region][m] = arr[..., :3][m]
        mask[region] |= m
    return Image.fromarray(img, "RGB"), Image.fromarray(mask.astype(np.uint8) * 255, "L")


def credits_table(title, note, rows, roots):
    lines = [f"# {title}", "", note, "",
             "| File | Debian package (version) | Original file in package | Author | Licence |",
             "|---|---|---|---|---|"]
    for path, pkg, rel, author, lic in rows:
        lines.append(f"| {path} | {pkg} ({version(roots, pkg)}) | `/{rel}` | {author} | {lic} |")
    return "\n".join(lines) + "\n"


RESIZE_NOTE = ("Photos were resized with Pillow (LANCZOS) so that the long side is at most "
               "512 px, re-encoded as JPEG (quality 90) and stripped of metadata; otherwise "
               "unmodified. Built by `tools/build_embedded_data.py`. Authors and licences as "
               "stated in each package's `/usr/share/doc/<package>/copyright`; full licence "
               "texts are there too (GPL-2+: /usr/share/common-licenses/GPL-2).")

SCENERY_NOTE = (
    "\n\nWhere the copyright file covers the photos only through `Files: *`, the credits "
    "come from: tuxpaint-data `/usr/share/doc/tuxpaint-data/AUTHORS.txt.gz` (templates by "
    "Bill Kendrick; the reef and San Francisco starter backgrounds are public-domain NOAA "
    "photos, also stated in `/usr/share/tuxpaint/starters/*.txt`); lxqt-themes "
    "`/usr/share/lxqt/wallpapers/License` (CC-BY-SA-3.0, photos by stefonarch "
    "<standreas@riseup.net>; the Debian copyright file gives LGPL-2.1+ for `Files: *`).")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("roots", nargs="+", type=Path, help="folders the .deb files were extracted to")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1])
    args = ap.parse_args()
    roots, out = args.roots, args.out

    rows = []
    assert not set(SCENERY_TRAIN) & set(SCENERY_TEST)
    assert not set(SCENERY_TRAIN.values()) & set(SCENERY_TEST.values())
    for split, table in (("train", SCENERY_TRAIN), ("test", SCENERY_TEST)):
        for name, key in table.items():
            pkg, rel, author, lic = PHOTOS[key]
            save_photo(find(roots, pkg, rel), out / "data/scenery" / split / f"{name}.jpg")
            rows.append((f"`{split}/{name}.jpg`", pkg, rel, author, lic))
    (out / "data/scenery/CREDITS.md").write_text(credits_table(
        "Scenery photos: credits", "Paths are relative to `data/scenery/`. " + RESIZE_NOTE
        + SCENERY_NOTE, rows, roots))

    rows = []
    for scene, keys in BACKGROUNDS.items():
        for i, key in enumerate(keys, 1):
            pkg, rel, author, lic = PHOTOS[key]
            save_photo(find(roots, pkg, rel), out / "backgrounds" / scene / f"{scene}{i}.jpg")
            rows.append((f"`{scene}/{scene}{i}.jpg`", pkg, rel, author, lic))
    (out / "backgrounds/CREDITS.md").write_text(credits_table(
        "Background photos: credits", "Paths are relative to `backgrounds/`. " + RESIZE_NOTE,
        rows, roots))

    rows = []
    for folder, variants in COMPOSITIONS.items():
        d = out / "data/examples/s2_object_compositions" / folder
        d.mkdir(parents=True, exist_ok=True)
        for i, (grey, placements) in enumerate(variants, 101):
            img, mask = compose(roots, grey, placements)
            img.save(d / f"img_{i:06d}.png", optimize=True)
            mask.save(d / f"mask_{i:06d}.png", optimize=True)
        for name in dict.fromkeys(p[0] for _, ps in variants for p in ps):
            rows.append((f"`s2_object_compositions/{folder}/img_*.png`: {name}", TUX, OBJECTS[name],
                         TUX_AUTHOR, TUX_LIC))
    note = ("Objects are Tux Paint stamps (cut-out photos with an alpha channel), cropped to "
            "their alpha bounding box, rescaled with Pillow LANCZOS (some slightly enlarged) "
            "and pasted with the binary mask (alpha > 127) onto a plain 512x512 canvas "
            "(white for img_000101, grey 128 for img_000102). Built by "
            "`tools/build_embedded_data.py`. Paths are relative to `data/examples/`. "
            "The package's copyright file has a single `Files: *` entry crediting Bill "
            "Kendrick (Tux Paint lead) for all stamps; the individual stamp photographers "
            "are not named in the Debian package. Its licence short name is `GPL-2`, but the "
            "text grants 'version 2 ... or (at your option) any later version', i.e. GPL-2+.")
    (out / "data/examples/CREDITS.md").write_text(credits_table(
        "Example object compositions: credits", note, rows, roots))
    print("done:", out)


if __name__ == "__main__":
    main()
