"""Build data/scenery_large: a few hundred credited scenery photos from Debian packages.

    python tools/build_scenery_set.py                      # full build (~1 GB of .deb files)
    python tools/build_scenery_set.py --sources mate,lomiri16 --out /tmp/scenery_small
    python tools/build_scenery_set.py --cache_dir /data/debs --max_side 768

Every package in SOURCES is fetched once with `apt-get download PKG=VERSION` (a private
apt state under --cache_dir; the system's apt configuration is left alone), unpacked
with `dpkg -x`, and the files named by the source's include globs (minus its exclude
globs) are read; Qt .rcc archives and Enlightenment .edj files are opened with
tools/archive_extract.py.  The allow / deny lists were made by looking at every
candidate: only real photographs are kept (no drawings, renders, logos, abstract art,
screenshots), preferring outdoor scenes.  plasma-workspace-wallpapers and scratch are
never used: they are reserved for independent evaluation.

Each photo is turned into RGB (EXR panoramas are Reinhard-tone-mapped), skipped if its
shorter side is < 256 px, cut into 2-3 crops if it is a panorama (aspect > 2; for
equirectangular HDRIs only the middle half of the height is used), shrunk so that the
long side is <= --max_side (never enlarged) and saved as JPEG quality 95 without
metadata.  Near-duplicates (256-bit dHash within 20 bits, across all sources) are dropped,
the first one listed is kept.  The split is a hash of (package, path), 76/12/12 %
train/val/test, so all crops of a photo share a split; photos that are also in the small
data/scenery set (tools/build_embedded_data.py) keep their split from there.

Outputs: <out>/{train,val,test}/*.jpg and <out>/CREDITS.csv (file, split, package,
version, path, author, licence; authors and licences from each package's
usr/share/doc/<pkg>/copyright, per-file stanzas first, else 'Files: *', or from the
package's own credits file where noted).  Running it again only re-reads the cached
packages: existing outputs are kept and nothing changes.  --sources builds a set of only
those sources (other photos in --out are removed).  blender-data's DWAB-compressed EXRs
need the optional OpenEXR module (pip install OpenEXR); without it they are skipped.
"""
import argparse
import csv
import fnmatch
import gzip
import hashlib
import importlib.util
import io
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools import archive_extract as ax  # noqa: E402
from tools import build_embedded_data as embedded  # noqa: E402
from utils.cli import HelpFormatter  # noqa: E402

MIRROR = "http://deb.debian.org/debian"
RESERVED = {"plasma-workspace-wallpapers", "scratch"}  # independent evaluation only
SPLIT_EDGES = (("train", 0.76), ("val", 0.88), ("test", 1.0))
MIN_SIDE, PANORAMA_ASPECT, DUP_BITS, MIN_EVAL = 256, 2.0, 20, 30  # DUP_BITS of 256
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".webp", ".exr")


@dataclass(frozen=True)
class Source:
    name: str  # short id (output file prefix, --sources)
    pkg: str
    version: str  # pinned; if gone from the archive, the suite's current one is used
    suite: str
    include: tuple  # fnmatch globs on paths in the package ('archive.rcc:/inner' for rcc)
    exclude: tuple = ()
    kind: str = "file"  # file | rcc | edj
    credits: dict = field(default_factory=dict)  # basename glob -> (author, licence)
    credits_doc: tuple = ()  # (package file stating `credits`, words it must contain...)
    equirect: bool = False
    needs: str = ""  # optional Python module without which the source is skipped
    star_note: str = ""  # added to the author when only 'Files: *' covers a photo


GC, E, WP = "usr/share/gcompris-qt/rcc/", "usr/share/enlightenment/data/backgrounds/", \
    "usr/share/wordpress/wp-content/themes/"
TUX_T, TUX_S = embedded.TUX_T, embedded.TUX_S
KENDRICK, NOAA = embedded.KENDRICK, embedded.NOAA_PD
SOURCES = [  # data/scenery's packages first, so their photos win any duplicate
    Source("mate", "mate-backgrounds", "1.26.0-1", "bookworm",
           ("usr/share/backgrounds/mate/nature/*.jpg",)),
    Source("lomiri16", "lomiri-wallpapers-16.04", "20.04.0-2", "bookworm",
           ("usr/share/backgrounds/*.jpg",),
           ("*/umang_*", "*/analogpattern_*", "*/Picture_0B_*", "*/greentock_*")),
    Source("lxqt", "lxqt-themes", "1.2.0-1", "bookworm", tuple(
        f"usr/share/lxqt/wallpapers/{n}" for n in (
            "after-the-rain.jpg", "appleflower.png", "beam.png", "butterfly.png", "drop.png",
            "flowers.png", "fog.jpg", "this-is-not-windows.jpg", "Valendas.png",
            "Butterfly-Kenneth-Wimer.jpg", "cloud.png")),
           credits={"Butterfly-Kenneth-Wimer.jpg": ("Kenneth Wimer; LXQt Project Team (2022)",
                                                    "CC-BY-SA-3.0"),
                    "Valendas.png": ("LXQt Project Team (2022)", "CC-BY-SA-3.0"),
                    "cloud.png": ("LXQt Project Team (2022)", "CC-BY-SA-3.0"),
                    "*": ("stefonarch (LXQt project)", "CC-BY-SA-3.0")},
           credits_doc=("usr/share/lxqt/wallpapers/License", "stefonarch", "after-the-rain",
                        "LXQt Project Team", "licenses/by-sa/3.0")),
    Source("maldives", "sddm-theme-maldives", "0.19.0-5", "bookworm",
           ("usr/share/sddm/themes/maldives/background.jpg",)),  # maldives.jpg: a screenshot
    Source("tuxpaint", "tuxpaint-data", "1:0.9.28-sdl2-1", "bookworm",
           (TUX_T + "*.jpg", TUX_S + "reef-back.png", TUX_S + "skyline-sf-dusk-back.jpeg"),
           credits={"reef-back.png": ("Thomas K. Gibson, NOAA (reef2583)", NOAA),
                    "skyline-sf-dusk-back.jpeg": ("Rich Bourgerie, NOAA (line1989)", NOAA),
                    "*.jpg": KENDRICK},
           credits_doc=("usr/share/doc/tuxpaint-data/AUTHORS.txt.gz", "Burnt bark",
                        "Wool mill machine", "Bill Kendrick", "NOAA")),
    Source("gcompris25", "gcompris-qt-data", "25.0.12-1", "trixie", tuple(
        GC + p for p in ("clickgame.rcc:*/resource/sea*", "erase.rcc:*",
                         "details.rcc:*/image/*_background.*", "explore_monuments.rcc:*",
                         "explore_farm_animals.rcc:*/animals/*",
                         "explore_world_animals.rcc:*/animals/*")),
           ("*Gogh*", "*Eglise_dAuvers*", "*PortraitOfPereTanguy*"), kind="rcc",
           star_note=" (Debian copyright 'Files: *'; upstream per-photo credits, where given,"
                     " are in the activity's ActivityInfo.qml in the same .rcc)"),
    Source("gcompris10", "gcompris-qt-data", "1.0-1", "bullseye", tuple(
        GC + p for p in ("erase.rcc:*/resource/*", "categorization.rcc:*/images/fishes/*",
                         "categorization.rcc:*/images/monuments/*",
                         "categorization.rcc:*/images/renewable/*")),  # fish 24: a painting,
           tuple(f"*/fishes/fish{n}.*" for n in (11, 19, 24)), kind="rcc"),  # 11, 19: specimens
    Source("e27", "enlightenment-data", "0.27.1-1", "trixie", (E + "*.edj",),
           tuple(E + n + ".edj" for n in ("Dunes", "Flat-*", "Paper-Flower", "Squiggle*")),
           kind="edj"),
    Source("e24", "enlightenment-data", "0.24.2-8+deb11u1", "bullseye", (E + "*.edj",),
           kind="edj"),
    Source("budgie", "budgie-backgrounds", "3.0-1", "trixie",
           ("usr/share/backgrounds/budgie/*.jpg",), tuple(
               f"*/{n}.jpg" for n in ("abstract-spiral", "ocean-waves", "saturnian-profile",
                                       "valley-midnight", "waves-midnight"))),
    Source("gnome338", "gnome-backgrounds", "3.38.0-1", "bullseye", tuple(
        f"usr/share/backgrounds/gnome/{n}.jpg" for n in ("ColdWarm", "Dark_Ivy", "Road",
                                                        "SeaSunset")),
           credits={"ColdWarm.jpg": ("invisiblepower (Pexels)", "CC0-1.0"),
                    "Dark_Ivy.jpg": ("Garrett LeSage (2012)", "CC-BY-SA-3.0"),
                    "Road.jpg": ("Joshua Welch (Pexels)", "CC0-1.0"),
                    "SeaSunset.jpg": ("Sebastian Voortman (Pexels)", "CC0-1.0")},
           credits_doc=("usr/share/doc/gnome-backgrounds/AUTHORS", "ColdWarm.jpg:\n  CC0",
                        "Dark_Ivy.jpg", "Garrett LeSage", "Road.jpg:\n  CC0, Photo by Joshua",
                        "SeaSunset.jpg:\n  CC0, Photo by Sebastian Voortman")),
    Source("kphotoalbum", "kphotoalbum", "6.0.1-4", "trixie", tuple(
        f"usr/share/kphotoalbum/demo/{n}.jpg" for n in (
            "grand_canyon_[23]", "skagen*", "snow", "sunset", "cold_water", "spiff*")),
           credits={"*": ("Jesper K. Pedersen and the KPhotoAlbum authors", "GPL-2+")},
           credits_doc=("usr/share/doc/kphotoalbum/copyright", "Jesper K. Pedersen",
                        "either version 2 of the License, or")),
    Source("wp2025", "wordpress-theme-twentytwentyfive", "6.8.7+dfsg1-0+deb13u1", "trixie",
           (WP + "twentytwentyfive/assets/images/*.webp",), tuple(f"*/{n}.webp" for n in (
               "agenda-img-4", "book-image*", "hero-podcast", "link-in-bio-background",
               "man-in-hat", "nurse", "services-subscriber-photo", "typewriter",
               "vash-gon-square", "woman-splashing-water", "location"))),
    Source("wp2024", "wordpress-theme-twentytwentyfour", "6.8.7+dfsg1-0+deb13u1", "trixie",
           (WP + "twentytwentyfour/assets/images/*.webp",),
           ("*/abstract-geometric-art.webp", "*/icon-message.webp", "*/green-staircase.webp")),
    Source("palapeli", "palapeli-data", "4:25.04.0-1", "trixie",
           ("usr/share/palapeli/collection/*.jpg",)),
    Source("sklearn", "python3-sklearn", "1.4.2+dfsg-8", "trixie",
           ("usr/lib/python3/dist-packages/sklearn/datasets/images/*.jpg",),
           credits={"china.jpg": ("danielbuechele (Flickr)", "CC-BY-2.0"),
                    "flower.jpg": ("vultilion (Flickr; README credits danielbuechele)",
                                   "CC-BY-2.0")},
           credits_doc=("usr/lib/python3/dist-packages/sklearn/datasets/images/README.txt",
                        "Image: china.jpg", "Image: flower.jpg", "photos/vultilion/",
                        "danielbuechele", "licenses/by/2.0")),
    Source("skimage", "python3-skimage", "0.25.2-2", "trixie", tuple(
        f"usr/lib/python3/dist-packages/skimage/data/{n}" for n in (
            "chelsea.png", "coffee.png", "rocket.jpg")),
           credits={"chelsea.png": ("Stefan van der Walt", "CC0-1.0"),
                    "coffee.png": ("Rachel Michetti", "CC0-1.0"),
                    "rocket.jpg": ("SpaceX", "public domain")},
           credits_doc=("usr/lib/python3/dist-packages/skimage/data/_fetchers.py",
                        "CC0 by the photographer (Stefan van der Walt)",
                        "CC0 by the photographer (Rachel Michetti)", "DSCOVR",
                        "released in the public domain")),
    Source("elementary", "libelementary-data", "1.28.1-1", "trixie", tuple(
        f"usr/share/elementary/images/{n}.jpg" for n in (
            "mystrale", "mystrale_2", "plant_01", "rock_0?", "sky_0?"))),
    Source("libjxl", "libjxl-testdata", "0.0~git20240106.ff8d743-2", "trixie", tuple(
        "usr/share/libjxl-testdata/" + n for n in (
            "external/wesaturate/500px/*_srgb8.png", "jxl/flower/flower.png",
            "jxl/hdr_room.png", "jxl/jpeg_reconstruction/bicycles_restarts.jpg"))),
    Source("renpy", "renpy-demo", "8.3.4+dfsg-2+deb13u1", "trixie", tuple(
        "usr/share/games/renpy/demo/game/" + n for n in (
            "images/bg cave.jpg", "images/bg washington.jpg", "images/bg whitehouse.jpg",
            "gui/main_menu.jpg"))),
    Source("pysolfc", "pysolfc", "3.2.0-1", "trixie", tuple(
        f"usr/share/games/pysolfc/tiles/save-aspect/{n}.jpg" for n in ("Leaf", "Mountains")),
           credits={"*": ("PySolFC table tiles (authors not named)", "CC0-1.0")},
           credits_doc=("usr/share/games/pysolfc/tiles/COPYRIGHT", "under a CC0 license",
                        " - Leaf\n - Mountains")),
    Source("blender", "blender-data", "4.3.2+dfsg-2", "trixie", tuple(
        f"usr/share/blender/datafiles/studiolights/world/{n}.exr" for n in (
            "city", "courtyard", "forest", "night", "sunrise", "sunset")),
           credits={"*": ("Greg Zaal (Poly Haven)", "CC0-1.0")},
           credits_doc=("usr/share/blender/datafiles/studiolights/world/license.txt",
                        "licenses as CC0", "Greg Zaal"),
           equirect=True, needs="OpenEXR"),
]
assert not RESERVED & {s.pkg for s in SOURCES}
assert len({s.name for s in SOURCES}) == len(SOURCES)


# ----------------------------------------------------------------- packages
class Apt:
    """apt-get with its own lists and cache under cache_dir (system config untouched)."""

    def __init__(self, cache):
        self.cache, self.state, self.updated = cache, cache / "apt", False

    def _run(self, *args, cwd=None):
        opts = [f"Dir::State::Lists={self.state}/lists",
                f"Dir::Etc::SourceList={self.state}/sources.list",
                "Dir::Etc::SourceParts=/dev/null", f"Dir::Cache={self.state}/cache",
                "APT::Sandbox::User=root"]
        cmd = ["apt-get", "-q"] + [x for o in opts for x in ("-o", o)] + list(args)
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)

    def download(self, src):
        if not self.updated:
            for d in ("lists/partial", "cache/archives/partial"):
                (self.state / d).mkdir(parents=True, exist_ok=True)
            suites = sorted({s.suite for s in SOURCES})
            (self.state / "sources.list").write_text(
                "".join(f"deb {MIRROR} {s} main contrib\n" for s in suites))
            r = self._run("update")
            if r.returncode:
                raise RuntimeError("apt-get update failed: " + r.stderr.strip()[-200:])
            self.updated = True
        for spec in (f"{src.pkg}={src.version}", f"{src.pkg}/{src.suite}"):
            r = self._run("download", spec, cwd=self.cache)
            if r.returncode == 0:
                return
        raise RuntimeError((r.stderr.strip().splitlines() or ["apt-get download failed"])[-1])


def fetch(src, cache, apt):
    """Unpacked package folder and its version (download + dpkg -x, both cached)."""
    pattern = f"{src.pkg}_{src.version.replace(':', '%3a')}_*.deb"
    memo = cache / f".{src.name}.deb"  # the file used last time, if not the pinned one
    debs = sorted(cache.glob(pattern)) or (
        [cache / memo.read_text()] if memo.exists() and (cache / memo.read_text()).exists()
        else [])
    if not debs:
        before = set(cache.glob(f"{src.pkg}_*.deb"))
        apt.download(src)
        debs = sorted(set(cache.glob(f"{src.pkg}_*.deb")) - before) or sorted(cache.glob(pattern))
        if not debs:
            raise RuntimeError("downloaded file not found")
        memo.write_text(debs[-1].name)
    deb = debs[-1]
    version = deb.name.split("_")[1].replace("%3a", ":")
    if version != src.version:
        print(f"note: {src.pkg} {src.version} is gone; using {version}", file=sys.stderr)
    root = cache / "x" / deb.stem
    if not (root / ".complete").exists():
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        (root / ".complete").touch()
    return root, version


def members(src, root):
    """Sorted (path, read) of the source's selected items; read() -> bytes or a Path."""
    def selected(path):
        return (any(fnmatch.fnmatchcase(path, p) for p in src.include)
                and not any(fnmatch.fnmatchcase(path, p) for p in src.exclude))
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    out = []
    if src.kind == "file":
        out = [(f, lambda f=f: root / f) for f in files
               if selected(f) and f.lower().endswith(IMAGE_EXT)]
    elif src.kind == "edj":
        out = [(f + ":largest embedded JPEG", lambda f=f: ax.largest_jpeg((root / f).read_bytes()))
               for f in files if selected(f)]
    elif src.kind == "rcc":
        archives = {p.split(":")[0] for p in src.include}
        for f in files:
            if any(fnmatch.fnmatchcase(f, a) for a in archives):
                for inner, data in ax.rcc_entries((root / f).read_bytes()):
                    m = f"{f}:{inner}"
                    if selected(m) and inner.lower().endswith(IMAGE_EXT):
                        out.append((m, lambda d=data: d))
    return sorted(out, key=lambda m: m[0])


# ----------------------------------------------------------------- credits
def parse_dep5(text):
    """[(patterns, copyright, licence)] of a machine-readable copyright file, or []."""
    if not text.startswith("Format:"):
        return []
    stanzas = []
    for para in re.split(r"\n\s*\n", text):
        fields, key = {}, None
        for line in para.splitlines():
            m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if m and not line.startswith(" "):
                key = m.group(1)
                fields[key] = [m.group(2).strip()]
            elif key and line.strip() not in ("", "."):
                fields[key].append(line.strip())
        if "Files" in fields:
            stanzas.append((" ".join(fields["Files"]).split(),
                            "; ".join(x for x in fields.get("Copyright", []) if x),
                            fields.get("License", ["?"])[0]))
    return stanzas


def _stem(p):
    return p.rsplit(".", 1)[0] if "." in p.rsplit("/", 1)[-1] else p


def dep5_credit(stanzas, path, star_note=""):
    """(author, licence) for path: the last stanza with a pattern matching a tail of the
    path (upstream paths differ in their prefix; else with extensions ignored, as
    GCompris ships .jpg as .webp; else by base name), else 'Files: *' (+ star_note)."""
    parts = path.strip("/").split("/")
    tails = ["/".join(parts[i:]) for i in range(len(parts))]
    tests = (lambda pat: any(fnmatch.fnmatchcase(t, pat) for t in tails),
             lambda pat: any(fnmatch.fnmatchcase(_stem(t), _stem(pat)) for t in tails),
             lambda pat: "*" not in pat and _stem(pat.split("/")[-1]) == _stem(parts[-1]))
    for test in tests:
        hits = [s for s in stanzas if any(p != "*" and test(p) for p in s[0])]
        if hits:
            who = hits[-1][1]
            return ("not named ('Copyright: none')" if who == "none" else who), hits[-1][2]
    star = [s for s in stanzas if "*" in s[0]]
    if not star:
        return "?", "?"
    holders = star[0][1].split("; ")  # the package-wide list can be long: first + others
    return holders[0] + (" and others" if len(holders) > 1 else "") + star_note, star[0][2]


def wordpress_credits(readme):
    """{file name: (author, licence)} from a WordPress theme readme's '=== Images ===' part:
    blocks of 'title / licence / file(s) / URL' lines, or 'file.webp - URL' lines."""
    text = readme.split("=== Images ===", 1)[1]
    default = "CC0-1.0" if re.search(r"^License: CC0", text, re.M) else "?"
    out = {}
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [x.strip() for x in block.splitlines()]
        url = next((x for x in lines if x.startswith("http")), "")
        lic = "CC0-1.0" if "CC0" in block else default
        for line in lines:
            m = re.fullmatch(r"([\w-]+)(\.webp)?(?: - (http\S+))?", line)
            if m and (m.group(2) or m.group(1) == "link-in-bio-image"):
                title = next(x for x in lines if not x.startswith("License:"))
                who = f"rawpixel.com ({m.group(3)})" if m.group(3) else f"{title} ({url})"
                out[m.group(1) + ".webp"] = (who, lic)
    return out


def credit_for(src, root, path):
    inner = path.split(":", 1)[-1] if src.kind == "rcc" else path.split(":", 1)[0]
    base = inner.rsplit("/", 1)[-1]
    for glob, credit in src.credits.items():
        if fnmatch.fnmatchcase(base, glob):
            return credit
    if src.pkg.startswith("wordpress-theme-"):
        readme = next(root.glob(WP + "*/readme.txt")).read_text()
        return wordpress_credits(readme)[base]
    text = (root / "usr/share/doc" / src.pkg / "copyright").read_text()
    return dep5_credit(parse_dep5(text), inner, src.star_note)


def check_credits_doc(src, root):
    """The hand-copied credits must still be what the package's credits file says."""
    if src.credits_doc:
        doc, *words = src.credits_doc
        raw = (root / doc).read_bytes()
        text = (gzip.decompress(raw) if doc.endswith(".gz") else raw).decode("utf-8", "replace")
        missing = [w for w in words if w.lower() not in text.lower()]
        if missing:
            raise SystemExit(f"{src.name}: {doc} no longer says {missing}: check the credits")


# ----------------------------------------------------------------- images
def load_photo(data, name):
    """RGB PIL image of a member (bytes or Path); None if it is mostly transparent."""
    if name.lower().endswith(".exr"):
        return Image.fromarray(ax.tone_map_hdr(ax.read_exr(data)))
    im = Image.open(data if isinstance(data, Path) else io.BytesIO(data))
    icc = im.info.get("icc_profile")
    im = ImageOps.exif_transpose(im)
    if im.mode.startswith("I"):  # 16-bit grey
        im = Image.fromarray((np.asarray(im, np.float64) / 257).round().astype(np.uint8))
    if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
        rgba = np.asarray(im.convert("RGBA"))
        if (rgba[..., 3] < 250).mean() > 0.01:
            return None
        im = Image.fromarray(rgba[..., :3])
    if icc and im.mode in ("RGB", "CMYK"):
        try:  # bring wide-gamut / CMYK profiles to sRGB before the profile is dropped
            im = ImageCms.profileToProfile(im, ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                           ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError):
            pass
    return Image.fromarray(np.asarray(im.convert("RGB")))  # fresh: no metadata


def crop_boxes(w, h, equirect=False):
    """Boxes to cut: the whole image, or 2-3 evenly spaced 4:3 crops of a panorama."""
    top, bottom = (h // 4, h - h // 4) if equirect else (0, h)
    w_, h_ = (w, bottom - top)
    long_, short = max(w_, h_), min(w_, h_)
    if long_ / short <= PANORAMA_ASPECT:
        return [(0, top, w, bottom)]
    n, c = (2 if long_ / short < 3 else 3), min(long_, round(short * 4 / 3))
    offs = [round(i * (long_ - c) / (n - 1)) for i in range(n)]
    if w_ >= h_:
        return [(x, top, x + c, bottom) for x in offs]
    return [(0, top + y, w, top + y + c) for y in offs]


def split_for(pkg, path, forced=None):
    """'train' / 'val' / 'test' from a hash of (package, path); forced entries win."""
    if forced and (pkg, path) in forced:
        return forced[(pkg, path)]
    u = int.from_bytes(hashlib.sha256(f"{pkg}\0{path}".encode()).digest()[:8], "big") / 2**64
    return next(s for s, edge in SPLIT_EDGES if u < edge)


def output_names(src_name, path, split, n_crops):
    """Output files (relative to --out) of one photo: all in one split folder."""
    part = path.split(":")[-1] if "/" in path.split(":")[-1] else path.split(":")[0]
    slug = re.sub(r"[^a-z0-9]+", "_", _stem(part.rsplit("/", 1)[-1]).lower())
    base = f"{split}/{src_name}_{slug.strip('_')[:40]}_{hashlib.sha1(path.encode()).hexdigest()[:6]}"
    return [f"{base}.jpg"] if n_crops == 1 else [f"{base}_c{i}.jpg" for i in range(n_crops)]


def save_jpeg(im, dst, max_side):
    scale = max_side / max(im.size)
    if scale < 1:
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                       Image.LANCZOS)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".tmp")
    im.save(tmp, "JPEG", quality=95)
    tmp.replace(dst)


# ----------------------------------------------------------------- main
def forced_splits():
    """data/scenery's photos keep their split there (its test photos stay out of train)."""
    out = {}
    for table, split in ((embedded.SCENERY_TRAIN, "train"), (embedded.SCENERY_TEST, "test")):
        for key in table.values():
            pkg, rel = embedded.PHOTOS[key][:2]
            out[(pkg, rel)] = split
    return out


def build_params(args) -> str:
    """The settings a built set depends on, as stored in <out>/.build_params."""
    return f"max_side={args.max_side} jpeg_quality=95\n"


def build(args):
    cache, out = Path(args.cache_dir).expanduser(), Path(args.out)
    cache.mkdir(parents=True, exist_ok=True)
    wanted = set(args.sources.split(",")) if args.sources else None
    sources = [s for s in SOURCES if not wanted or s.name in wanted or s.pkg in wanted]
    unknown = (wanted or set()) - {s.name for s in SOURCES} - {s.pkg for s in SOURCES}
    if unknown:
        raise SystemExit(f"unknown --sources {sorted(unknown)}; see --help")
    # Other settings than the last build's: every photo is written again (over the old file, so that a build that
    # fails half way leaves a usable set; main() writes the stamp only once the build is done).
    stamp = out / ".build_params"
    redo = stamp.exists() and stamp.read_text() != build_params(args)
    out.mkdir(parents=True, exist_ok=True)
    hash_file = cache / "photo_dhash256.json"  # sha1 of the bytes -> [dhash, w, h]
    hashes = json.loads(hash_file.read_text()) if hash_file.exists() else {}
    apt, forced, seen, rows, skipped, dups = Apt(cache), forced_splits(), [], [], [], []
    credited = {}  # (package, credit naming a source URL) -> first photo with it
    for src in sources:
        try:
            if src.needs and importlib.util.find_spec(src.needs) is None:
                raise RuntimeError(f"needs the {src.needs} Python module (pip install {src.needs})")
            root, version = fetch(src, cache, apt)
        except (RuntimeError, subprocess.CalledProcessError) as e:
            skipped.append(f"skipped {src.pkg} ({src.name}): {e}")
            print(skipped[-1], file=sys.stderr)
            continue
        check_credits_doc(src, root)
        items = sorted(members(src, root), key=lambda m: ((src.pkg, m[0]) not in forced, m[0]))
        for path, read in tqdm(items, desc=f"{src.name:12s}", unit="photo", leave=False):
            data = read()
            if data is None:  # an .edj without a decodable JPEG
                continue
            key = hashlib.sha1(data.read_bytes() if isinstance(data, Path) else data).hexdigest()
            im = None
            if key not in hashes:
                im = load_photo(data, path)
                hashes[key] = None if im is None else [f"{ax.dhash(im):064x}", *im.size]
            if hashes[key] is None or min(hashes[key][1:]) < MIN_SIDE:
                continue
            h, w, ht = int(hashes[key][0], 16), *hashes[key][1:]
            if ax.is_near_duplicate(h, (s[0] for s in seen), DUP_BITS):
                dups.append(f"{src.name}:{path} ~ " + next(
                    s[1] for s in seen if ax.hamming(h, s[0]) <= DUP_BITS))
                continue
            author, licence = credit_for(src, root, path)
            if "http" in author and (src.pkg, author) in credited:  # same photo, other crop
                dups.append(f"{src.name}:{path} ~ {credited[(src.pkg, author)]} (same URL)")
                continue
            credited[(src.pkg, author)] = f"{src.name}:{path}"
            seen.append((h, f"{src.name}:{path}"))
            boxes = crop_boxes(w, ht, src.equirect)
            split = split_for(src.pkg, path, forced)
            names = output_names(src.name, path, split, len(boxes))
            if redo or not all((out / n).exists() for n in names):
                im = im or load_photo(data, path)
                for n, box in zip(names, boxes):
                    save_jpeg(im.crop(box), out / n, args.max_side)
            rows += [dict(file=n, split=split, package=src.pkg, version=version, path=path,
                          author=author, licence=licence, source=src.name) for n in names]
        kept = len({r["path"] for r in rows if r["source"] == src.name})
        print(f"{src.name:12s} {src.pkg} {version}: {kept} photos", file=sys.stderr)
        hash_file.write_text(json.dumps(hashes, indent=0, sort_keys=True))
    return out, sources, rows, skipped, dups


def write_outputs(out, rows):
    keep = {r["file"] for r in rows}
    stale = [p for s, _ in SPLIT_EDGES for p in sorted((out / s).glob("*.jpg"))]
    for old in stale:  # photos dropped from the lists since the last run
        if old.relative_to(out).as_posix() not in keep:
            old.unlink()
    cols = ["file", "split", "package", "version", "path", "author", "licence"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(sorted(rows, key=lambda r: r["file"]))
    credits = out / "CREDITS.csv"
    if not credits.exists() or credits.read_text() != buf.getvalue():
        credits.write_text(buf.getvalue())


def summary(sources, rows):
    photos = {}  # (source, split) -> set of paths
    for r in rows:
        photos.setdefault((r["source"], r["split"]), set()).add(r["path"])
    splits = [s for s, _ in SPLIT_EDGES]
    print(f"\n{'source':12s} {'package':34s}" + "".join(f"{s:>7s}" for s in splits)
          + f"{'photos':>8s}{'files':>7s}")
    for src in sources:
        n = [len(photos.get((src.name, s), ())) for s in splits]
        files = sum(r["source"] == src.name for r in rows)
        print(f"{src.name:12s} {src.pkg:34s}" + "".join(f"{x:7d}" for x in n)
              + f"{sum(n):8d}{files:7d}")
    tot = [sum(len(v) for (_, s), v in photos.items() if s == sp) for sp in splits]
    print(f"{'total':12s} {'':34s}" + "".join(f"{x:7d}" for x in tot)
          + f"{sum(tot):8d}{len(rows):7d}")
    return dict(zip(splits, tot))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "data/scenery_large"),
                    help="the folder to build: {train,val,test}/*.jpg and CREDITS.csv")
    ap.add_argument("--cache_dir", default="~/.cache/gan_paint/debs",
                    help="downloaded and unpacked packages, kept for the next build")
    ap.add_argument("--max_side", type=int, default=1024,
                    help=f"shrink each photo so that its long side is at most this (px; at least {MIN_SIDE})")
    ap.add_argument("--sources", default="", help="comma list of source ids or packages (default: all): "
                    + ",".join(s.name for s in SOURCES))
    args = ap.parse_args(argv)
    if args.max_side < MIN_SIDE:
        raise SystemExit(f"--max_side must be at least {MIN_SIDE} px (photos under that are skipped), "
                         f"got {args.max_side}")
    out, sources, rows, skipped, dups = build(args)
    if not rows:  # every source skipped (no network, say): leave --out as it was
        raise SystemExit(f"no photo was built ({len(skipped)} of {len(sources)} sources skipped, above); "
                         f"{out} is left as it was")
    write_outputs(out, rows)
    (out / ".build_params").write_text(build_params(args))
    per_split = summary(sources, rows)
    print(f"near-duplicates dropped: {len(dups)}" + "".join(f"\n  {d}" for d in dups))
    for s in skipped:
        print(s)
    if not args.sources and min(per_split["val"], per_split["test"]) < MIN_EVAL:
        raise SystemExit(f"fewer than {MIN_EVAL} val or test photos: {per_split}")


if __name__ == "__main__":
    main()
