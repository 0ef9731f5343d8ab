"""GMSD against a hand-computed example and the authors' MATLAB recipe; PSNR/SSIM/MS-SSIM settings."""

import math
import statistics

import numpy as np
import pytest
import torch
from scipy.signal import convolve2d

from ie_eval.metrics.image_quality import GMSD_C, full_reference, gmsd, ms_ssim_kernel_size


def gray(values) -> torch.Tensor:
    """(3, H, W) image with R = G = B = values (so luma = values)."""
    return torch.tensor(values, dtype=torch.float64).expand(3, -1, -1).clone()


def matlab_gmsd(y1: np.ndarray, y2: np.ndarray) -> float:
    """GMSD.m (Xue et al. 2014) with conv2 'same' written out from the full convolution."""

    def conv2_same(image, kernel):
        full = convolve2d(image, kernel, mode="full")
        top, left = kernel.shape[0] // 2, kernel.shape[1] // 2
        return full[top : top + image.shape[0], left : left + image.shape[1]]

    dx = np.array([[1, 0, -1]] * 3) / 3.0
    maps = []
    for y in (y1, y2):
        y = conv2_same(y, np.ones((2, 2)) / 4)[::2, ::2]
        maps.append(np.sqrt(conv2_same(y, dx) ** 2 + conv2_same(y, dx.T) ** 2))
    quality = (2 * maps[0] * maps[1] + GMSD_C) / (maps[0] ** 2 + maps[1] ** 2 + GMSD_C)
    return float(np.std(quality, ddof=1))


def test_gmsd_of_identical_images_is_zero():
    image = torch.rand(3, 16, 12) * 255
    assert gmsd(image, image) == pytest.approx(0.0, abs=1e-12)


def test_gmsd_hand_computed_4x4():
    # Reference: constant 30 -> after 2x2 averaging a constant 2x2 image, Prewitt magnitude 20*sqrt(2)
    # everywhere (zero padding). Distorted: top-left block 30, rest 0 -> magnitudes [0, 10, 10, 10*sqrt(2)].
    reference = gray(np.full((4, 4), 30.0))
    distorted = gray(np.pad(np.full((2, 2), 30.0), ((0, 2), (0, 2))))
    m_r2 = 800.0  # (20 sqrt 2)^2
    gms = [
        GMSD_C / (m_r2 + GMSD_C),
        (400 * math.sqrt(2) + GMSD_C) / (m_r2 + 100 + GMSD_C),
        (400 * math.sqrt(2) + GMSD_C) / (m_r2 + 100 + GMSD_C),
        (800 + GMSD_C) / (m_r2 + 200 + GMSD_C),
    ]
    assert gmsd(reference, distorted) == pytest.approx(statistics.stdev(gms), abs=1e-12)


@pytest.mark.parametrize("shape", [(8, 10), (7, 9)])
def test_gmsd_matches_the_matlab_recipe(shape):
    rng = np.random.default_rng(0)
    y1 = rng.uniform(0, 255, size=shape)
    y2 = np.clip(y1 + rng.normal(scale=30, size=shape), 0, 255)
    assert gmsd(gray(y1), gray(y2)) == pytest.approx(matlab_gmsd(y1, y2), abs=1e-10)


def test_ms_ssim_window_fits_small_images():
    assert ms_ssim_kernel_size(128, 128) == 7
    assert ms_ssim_kernel_size(176, 300) == 11
    with pytest.raises(ValueError):
        ms_ssim_kernel_size(24, 24)


def test_full_reference_metrics_rank_a_light_distortion_above_a_heavy_one():
    torch.manual_seed(0)
    source = torch.rand(3, 128, 128)
    light = (source + 0.02 * torch.randn_like(source)).clamp(0, 1)
    heavy = (source + 0.3 * torch.randn_like(source)).clamp(0, 1)
    for name in ("psnr", "ssim", "ms-ssim"):
        assert full_reference(name, source, light) > full_reference(name, source, heavy), name
    assert full_reference("gmsd", source, light) < full_reference("gmsd", source, heavy)
    assert full_reference("psnr", source, source) == 100.0  # capped, not inf
    assert full_reference("ms-ssim", source, source) == pytest.approx(1.0, abs=1e-5)
