"""Image loading in every odd mode, the decode-once cache, transforms, and folder errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from data.datasets import ImageFolderDataset, center_crop, masked_batches, resize_short_side
from data.images import list_images, load_image
from utils.images import to_float, to_uint8
from tests.helpers import smooth_image, write_images
from utils.errors import InputError


def test_odd_modes_load_as_upright_rgb(tmp_path):
    base = smooth_image(1, 40, 30)
    base.convert("L").save(tmp_path / "gray.png")
    base.convert("RGBA").save(tmp_path / "rgba.png")
    base.convert("P").save(tmp_path / "palette.png")
    base.save(tmp_path / "photo.webp")
    base.save(tmp_path / "photo.bmp")
    base.convert("CMYK").save(tmp_path / "cmyk.jpg")
    sixteen = (np.asarray(base.convert("L"), dtype=np.uint16) * 257)  # full 16-bit range
    Image.fromarray(sixteen).save(tmp_path / "gray16.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the stored 40x30 image shows as 30x40
    base.save(tmp_path / "rotated.jpg", exif=exif)
    for path in tmp_path.iterdir():
        im = load_image(path)
        assert im.mode == "RGB", path.name
        expected = (30, 40) if path.name == "rotated.jpg" else (40, 30)
        assert im.size == expected, path.name
    # 16-bit values are rescaled, not clipped to white.
    gray16 = np.asarray(load_image(tmp_path / "gray16.png"))[..., 0]
    gray8 = np.asarray(base.convert("L"))
    assert np.abs(gray16.astype(int) - gray8.astype(int)).max() <= 1


def test_transparent_pixels_become_white(tmp_path):
    Image.new("RGBA", (16, 16), (255, 0, 0, 0)).save(tmp_path / "clear.png")  # 16 px: the smallest photo
    assert (np.asarray(load_image(tmp_path / "clear.png")) == 255).all()


def test_corrupt_file_is_skipped_with_warning(tmp_path):
    write_images(tmp_path / "sub", 2)  # recursive listing
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg at all")
    with pytest.warns(UserWarning, match="broken.jpg"):
        dataset = ImageFolderDataset(tmp_path, 64, 0.4, train=False)
    assert len(dataset) == 2 and dataset.names == ["sub_img_000", "sub_img_001"]


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(InputError, match="folder not found"):
        list_images(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(InputError, match="no images"):
        ImageFolderDataset(tmp_path, 64, 0.4, train=False)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.warns(UserWarning), pytest.raises(InputError, match="could be read"):
        ImageFolderDataset(tmp_path, 64, 0.4, train=False)


def test_missing_image_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "nope.jpg")


def test_eval_items_are_centre_crops(tmp_path):
    write_images(tmp_path, 3, size=(96, 64))
    dataset = ImageFolderDataset(tmp_path, 64, 0.4, train=False)
    item = dataset[0]
    assert item["image"].shape == (3, 64, 64) and item["mask"].shape == (1, 64, 64)
    assert item["image"].min() >= -1 and item["image"].max() <= 1
    full = torch.from_numpy(np.asarray(load_image(tmp_path / "img_000.png")).copy()).permute(2, 0, 1)
    assert torch.equal(to_uint8(item["image"]), full[:, :, 16:80])  # 64-high image: crop only


def test_train_items_random_but_reproducible(tmp_path, monkeypatch):
    write_images(tmp_path, 2, size=(120, 90))
    calls = []
    import data.datasets as datasets
    original = datasets.load_image
    monkeypatch.setattr(datasets, "load_image", lambda p, **limits: calls.append(p) or original(p, **limits))
    dataset = ImageFolderDataset(tmp_path, 64, 0.4, train=True, mask_kinds=("gap", "box"), repeat=3)
    assert len(dataset) == 6
    torch.manual_seed(0)
    first = [dataset[i]["image"] for i in range(6)]
    torch.manual_seed(0)
    second = [dataset[i]["image"] for i in range(6)]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not torch.equal(first[0], first[2]), "repeats of one image get different crops"
    assert len(calls) == 2, "each file is decoded once, not once per item"


def test_masked_batches_keep_the_order_and_blank_the_hole(tmp_path):
    write_images(tmp_path, 5, size=(48, 40))
    dataset = ImageFolderDataset(tmp_path, 32, 0.4, train=False)
    batches = list(masked_batches(dataset, [4, 0, 2], 2))
    assert [len(truth) for truth, _, _ in batches] == [2, 1]
    truth = torch.cat([b[0] for b in batches])
    assert torch.equal(truth, torch.stack([dataset[i]["image"] for i in (4, 0, 2)]))
    mask, masked = torch.cat([b[1] for b in batches]), torch.cat([b[2] for b in batches])
    hole = mask.bool().expand_as(truth)
    assert hole.any() and (~hole).any()
    assert torch.equal(masked[~hole], truth[~hole]) and not torch.equal(masked[hole], truth[hole])


def test_uint8_round_trip_is_exact():
    x = torch.arange(256, dtype=torch.uint8).view(1, 16, 16).expand(3, -1, -1)
    assert torch.equal(to_uint8(to_float(x)), x)


def test_resize_and_crop_shapes():
    image = torch.zeros(3, 50, 100, dtype=torch.uint8)
    resized = resize_short_side(image, 64)
    assert resized.shape == (3, 64, 128)
    assert center_crop(resized, 64).shape == (3, 64, 64)


def test_color_jitter_changes_a_crops_colours_together_and_is_off_by_default(tmp_path):
    from data.datasets import jitter_colors
    write_images(tmp_path, 1, size=(120, 90))
    plain = ImageFolderDataset(tmp_path, 64, 0.4, train=True)
    jittered = ImageFolderDataset(tmp_path, 64, 0.4, train=True, color_jitter=0.3)
    torch.manual_seed(0)
    before = plain[0]
    torch.manual_seed(0)
    after = jittered[0]
    torch.manual_seed(0)
    again = jittered[0]
    assert torch.equal(after["image"], again["image"])  # from torch's RNG: resumable
    diff = (after["image"] - before["image"]).abs()
    assert 0.02 < diff.mean() < 0.5  # other colours...
    a, b = (x["image"].flatten() - x["image"].mean() for x in (after, before))
    assert float(a @ b / (a.norm() * b.norm())) > 0.9  # ...of the same crop
    grey = torch.full((3, 16, 16), 100, dtype=torch.uint8)
    torch.manual_seed(1)
    out = jitter_colors(grey, 0.3)
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])  # grey stays grey: no hue change
    assert 70 <= int(out[0, 0, 0]) <= 130  # a brightness factor within [0.7, 1.3]
    assert jitter_colors(torch.full((3, 4, 4), 255, dtype=torch.uint8), 0.5).max() <= 255
    with pytest.raises(InputError, match="--color_jitter"):
        ImageFolderDataset(tmp_path, 64, 0.4, train=True, color_jitter=1.5)


def test_the_training_loader_takes_the_color_jitter_flag(tmp_path):
    from types import SimpleNamespace
    from utils.training import make_train_loader
    write_images(tmp_path, 2, size=(120, 90))
    args = SimpleNamespace(train_dir=str(tmp_path), image_size=64, crop_ratio=0.4, repeat=1, batch_size=2,
                           num_workers=0, min_crop_scale=0.5, color_jitter=0.25)
    assert make_train_loader(args, ("gap",), show_progress=False).dataset.color_jitter == 0.25
    del args.color_jitter  # a run from before the flag trains without it
    assert make_train_loader(args, ("gap",), show_progress=False).dataset.color_jitter == 0.0
