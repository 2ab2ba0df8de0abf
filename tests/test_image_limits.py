"""One rule for every photo: size limits from the header (decompression bombs, tiny photos), one line each."""
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from data.datasets import ImageFolderDataset
from data.images import load_image
from utils.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "data/scenery/test/mate_yellow_flower.jpg"


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that declares width x height pixels and holds almost none: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("width, height, message", [(20000, 20000, "megapixels, over the 40-megapixel limit"),
                                                    (8000, 8000, r"8000x8000 \(64 megapixels\): over the"),
                                                    (1, 1, "1x1: too small")])
def test_limits_are_decided_from_the_header(tmp_path, width, height, message):
    path = png_header(tmp_path / "photo.png", width, height) if width > 16 else tmp_path / "photo.png"
    if width <= 16:
        Image.new("RGB", (width, height)).save(path)
    with pytest.raises(InputError, match=message):
        load_image(path)


def test_the_limit_is_a_parameter_and_large_jpegs_decode_at_a_reduced_scale(tmp_path):
    path = tmp_path / "large.jpg"
    Image.new("RGB", (3000, 2000), (90, 140, 60)).save(path, quality=80)
    with pytest.raises(InputError, match="over the 5-megapixel limit"):
        load_image(path, max_pixels=5_000_000)
    assert load_image(path).size == (3000, 2000)
    reduced = load_image(path, draft_side=400)
    assert reduced.size == (750, 500) and min(reduced.size) >= 400  # libjpeg's 1/4 scale: still enough pixels
    assert load_image(path, draft_side=1200).size == (3000, 2000)  # not twice the size asked for: decoded whole


def test_the_cli_refuses_a_bomb_in_one_line_and_eval_skips_it(data, tmp_path):
    bomb = png_header(tmp_path / "bomb.png", 20000, 20000)
    result = subprocess.run([sys.executable, str(ROOT / "main.py"), "--image1", str(bomb), "--image2", str(PHOTO),
                             "--output", str(tmp_path / "out.png")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("error: ") and "megapixel limit" in result.stderr
    assert not (tmp_path / "out.png").exists()
    folder = tmp_path / "photos"
    folder.mkdir()
    png_header(folder / "bomb.png", 20000, 20000)
    Image.open(PHOTO).save(folder / "photo.jpg")
    with pytest.warns(UserWarning, match="skipping unreadable image: .*bomb.png"):
        dataset = ImageFolderDataset(folder, 64, 0.4, train=False)
    assert [p.name for p in dataset.files] == ["photo.jpg"]
