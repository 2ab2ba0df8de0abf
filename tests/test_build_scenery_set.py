"""Fast, offline tests of tools/build_scenery_set.py and tools/archive_extract.py."""
import io
import shutil
import struct
import subprocess
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFilter

from tools import archive_extract as ax
from tools import build_scenery_set as bss


# ----------------------------------------------------------------- a Qt .rcc writer
def qt_hash(name):
    """qt_hash() of QtCore, as rcc stores it next to each name."""
    h = 0
    for ch in name:
        h = ((h << 4) + ord(ch)) & 0xFFFFFFFF
        h ^= (h & 0xF0000000) >> 23
        h &= 0x0FFFFFFF
    return h


def make_rcc(tree, version=2, compress=(), zstd=()):
    """Bytes of a Qt rcc file laid out like `rcc --binary` writes it.

    tree: nested dict {name: bytes | dict}.  Names in `compress` are stored qCompress'ed
    (u32 big-endian uncompressed size + zlib stream) with flag 0x01, names in `zstd` as a
    zstd frame with flag 0x04.  Layout: 'qres', version, tree / data / names offsets
    (+ flags from version 3), then data, names and the tree, whose nodes are written
    breadth-first with each directory's children contiguous and sorted by name hash.
    """
    data, names, name_off = bytearray(), bytearray(), {}

    def add_name(n):
        if n not in name_off:
            name_off[n] = len(names)
            names.extend(struct.pack(">HI", len(n), qt_hash(n)) + n.encode("utf-16-be"))
        return name_off[n]

    nodes = [("", tree)]  # breadth-first list of (name, payload)
    records, i = [], 0
    while i < len(nodes):
        name, payload = nodes[i]
        i += 1
        if isinstance(payload, dict):
            children = sorted(payload.items(), key=lambda kv: qt_hash(kv[0]))
            records.append(("dir", name, len(children), len(nodes)))
            nodes.extend(children)
        else:
            flags, blob = 0, payload
            if name in compress:
                flags, blob = 0x01, struct.pack(">I", len(payload)) + zlib.compress(payload)
            elif name in zstd:
                flags = 0x04
                blob = subprocess.run(["zstd", "-q", "-c"], input=payload,
                                      capture_output=True, check=True).stdout
            records.append(("file", name, flags, len(data)))
            data.extend(struct.pack(">I", len(blob)) + blob)
    tree_bytes = bytearray()
    for kind, name, a, b in records:
        head = struct.pack(">I", add_name(name) if name else 0)
        if kind == "dir":
            tree_bytes += head + struct.pack(">HII", 0x02, a, b)
        else:
            tree_bytes += head + struct.pack(">HHHI", a, 0, 0, b)  # country, language
        if version >= 2:
            tree_bytes += struct.pack(">Q", 1700000000000)
    header_len = 20 if version < 3 else 24
    data_off = header_len
    names_off = data_off + len(data)
    tree_off = names_off + len(names)
    header = b"qres" + struct.pack(">IIII", version, tree_off, data_off, names_off)
    if version >= 3:
        header += struct.pack(">I", 0)
    return bytes(header + data + names + tree_bytes)


TREE = {"gcompris": {"src": {"a.webp": b"AAAA" * 10, "b.txt": b"hello",
                             "deep": {"c.jpg": bytes(range(256)) * 3}}},
        "top.qml": b"import QtQuick 2.0\n"}
EXPECTED = {"/gcompris/src/a.webp": b"AAAA" * 10, "/gcompris/src/b.txt": b"hello",
            "/gcompris/src/deep/c.jpg": bytes(range(256)) * 3,
            "/top.qml": b"import QtQuick 2.0\n"}


@pytest.mark.parametrize("version", [1, 2, 3])
def test_rcc_entries_reads_every_file_plain_and_zlib(version):
    blob = make_rcc(TREE, version, compress={"c.jpg", "top.qml"})
    assert dict(ax.rcc_entries(blob)) == EXPECTED


@pytest.mark.skipif(shutil.which("zstd") is None, reason="no zstd tool to build the fixture")
def test_rcc_entries_zstd():
    assert dict(ax.rcc_entries(make_rcc(TREE, 3, zstd={"a.webp"}))) == EXPECTED


def test_rcc_entries_rejects_other_files():
    with pytest.raises(ValueError):
        list(ax.rcc_entries(b"PK\x03\x04" + bytes(40)))


# ----------------------------------------------------------------- JPEG scan
def jpeg_bytes(w, h, seed):
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=80)
    return buf.getvalue()


def test_largest_jpeg_keeps_the_larger_decodable_one():
    small, large, huge = jpeg_bytes(16, 12, 0), jpeg_bytes(64, 48, 1), jpeg_bytes(200, 150, 2)
    truncated = huge[: len(huge) // 2]  # bigger, but cut off: not decodable
    blob = (b"EET\x00junk\xff\xd8" + small + b"\x00\xff\xd8\xff\xe0garbage" + truncated
            + b"more junk" + large + b"\xff\xd9tail")
    spans = ax.jpeg_spans(blob)
    assert [blob[s:e] for s, e in spans] == [small, large]
    assert ax.largest_jpeg(blob) == large
    assert Image.open(io.BytesIO(ax.largest_jpeg(blob))).size == (64, 48)
    assert ax.largest_jpeg(b"no jpeg here") is None


def test_jpeg_scan_handles_progressive_and_restart_markers():
    arr = np.random.default_rng(3).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    progressive, restarts = io.BytesIO(), io.BytesIO()
    Image.fromarray(arr).save(progressive, "JPEG", progressive=True)
    Image.fromarray(arr).save(restarts, "JPEG", restart_marker_blocks=1)
    for jpg in (progressive.getvalue(), restarts.getvalue()):
        assert ax.largest_jpeg(b"x" * 7 + jpg + b"y" * 5) == jpg


# ----------------------------------------------------------------- dedupe
def photo_like(seed, size=(320, 240)):
    """A smooth random 'scene': blurred noise at a few scales, so it has structure."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size[1], size[0], 3))
    for cells in (3, 6, 12):
        small = Image.fromarray(rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8))
        img += np.asarray(small.resize(size, Image.BICUBIC), np.float64) / 3
    return Image.fromarray(img.clip(0, 255).astype(np.uint8))


def test_dhash_finds_recompressed_and_resized_copies_only():
    a, b = photo_like(0), photo_like(1)
    buf = io.BytesIO()
    a.resize((200, 150), Image.LANCZOS).filter(ImageFilter.GaussianBlur(0.7)).save(
        buf, "JPEG", quality=40)
    copy = Image.open(buf)
    ha, hb, hc = ax.dhash(a), ax.dhash(b), ax.dhash(copy)
    assert ha.bit_length() <= 256
    assert ax.hamming(ha, hc) <= bss.DUP_BITS < ax.hamming(ha, hb)
    assert ax.is_near_duplicate(hc, [hb, ha], bss.DUP_BITS)
    assert not ax.is_near_duplicate(hb, [ha, hc], bss.DUP_BITS)


# ----------------------------------------------------------------- split and crops
def test_split_is_deterministic_and_shared_by_all_crops():
    paths = [f"usr/share/backgrounds/photo{i}.jpg" for i in range(3000)]
    splits = [bss.split_for("some-pkg", p) for p in paths]
    assert splits == [bss.split_for("some-pkg", p) for p in paths]
    share = {s: splits.count(s) / len(splits) for s in ("train", "val", "test")}
    assert abs(share["train"] - 0.76) < 0.04 and min(share["val"], share["test"]) > 0.09
    boxes = bss.crop_boxes(3000, 800)  # a panorama: 3 crops
    names = bss.output_names("src", paths[0], splits[0], len(boxes))
    assert len(names) == 3 and len({n.split("/")[0] for n in names}) == 1
    assert names == bss.output_names("src", paths[0], splits[0], 3)
    forced = {("some-pkg", paths[0]): "test"}
    assert bss.split_for("some-pkg", paths[0], forced) == "test"


def test_crop_boxes():
    assert bss.crop_boxes(1920, 1080) == [(0, 0, 1920, 1080)]
    wide = bss.crop_boxes(1600, 439)
    assert len(wide) == 3 and all(b[3] - b[1] == 439 and b[2] <= 1600 for b in wide)
    assert wide[0][0] == 0 and wide[-1][2] == 1600
    tall = bss.crop_boxes(300, 700)
    assert len(tall) == 2 and all(b[2] - b[0] == 300 for b in tall)
    equi = bss.crop_boxes(1024, 512, equirect=True)  # middle band 1024 x 256
    assert len(equi) == 3 and all((b[1], b[3]) == (128, 384) for b in equi)


# ----------------------------------------------------------------- tone mapping
def test_tone_map_hdr_output_range():
    rng = np.random.default_rng(0)
    hdr = np.exp(rng.normal(0, 4, (32, 48, 3))).astype(np.float32)  # ~1e-7 .. 1e7
    hdr[0, 0] = [np.nan, np.inf, -5]
    out = ax.tone_map_hdr(hdr)
    assert out.dtype == np.uint8 and out.shape == (32, 48, 3)
    assert out.min() >= 0 and out.max() <= 255 and out.std() > 10
    ramp = ax.tone_map_hdr(np.linspace(0, 1000, 50)[None, :, None].repeat(3, 2))
    assert np.all(np.diff(ramp[0, :, 0].astype(int)) >= 0)  # brighter stays brighter
    assert ax.tone_map_hdr(np.zeros((4, 4, 3))).max() == 0


# ----------------------------------------------------------------- credits
def test_dep5_credit_prefers_per_file_stanzas():
    text = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
            "Files: *\nCopyright: 2020 Someone\nLicense: GPL-2+\n\n"
            "Files: src/activities/erase/resource/alpaca.jpg\n"
            "       src/activities/erase/resource/bee.jpg\n"
            "Copyright: Jane Doe\nLicense: CC-BY-SA-4.0\n\n"
            "Files: 16.04/lake.jpg\nCopyright: 2018, A. Photographer\nLicense: CC0-1.0\n")
    st = bss.parse_dep5(text)
    assert bss.dep5_credit(st, "/gcompris/src/activities/erase/resource/bee.webp") == (
        "Jane Doe", "CC-BY-SA-4.0")
    assert bss.dep5_credit(st, "usr/share/backgrounds/lake.jpg") == (
        "2018, A. Photographer", "CC0-1.0")
    assert bss.dep5_credit(st, "usr/share/x/other.png") == ("2020 Someone", "GPL-2+")
    assert bss.parse_dep5("not a DEP-5 file") == []


def test_no_reserved_package_is_a_source():
    assert not {"plasma-workspace-wallpapers", "scratch"} & {s.pkg for s in bss.SOURCES}


def test_a_build_that_gets_no_package_leaves_the_set_as_it_was(tmp_path, monkeypatch):
    out = tmp_path / "scenery"
    (out / "train").mkdir(parents=True)
    (out / "train" / "old_photo.jpg").write_bytes(b"a photo of an earlier build")
    (out / ".build_params").write_text("max_side=512 jpeg_quality=95\n")  # other settings than this build's

    def offline(src, cache, apt):
        raise RuntimeError("apt-get update failed: no network")
    monkeypatch.setattr(bss, "fetch", offline)
    with pytest.raises(SystemExit, match="no photo was built"):
        bss.main(["--out", str(out), "--cache_dir", str(tmp_path / "cache"), "--sources", "mate"])
    assert (out / "train" / "old_photo.jpg").read_bytes() == b"a photo of an earlier build"
    assert (out / ".build_params").read_text() == "max_side=512 jpeg_quality=95\n"
    with pytest.raises(SystemExit, match="--max_side must be at least"):
        bss.main(["--out", str(out), "--cache_dir", str(tmp_path / "cache"), "--max_side", "-5"])
