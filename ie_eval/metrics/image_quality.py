"""Classical full-reference image metrics between a source and an edited image (baselines).

PSNR, SSIM and MS-SSIM come from torchmetrics on RGB in [0, 1]; GMSD (Xue et al. 2014) is
implemented here after the authors' MATLAB code:

    Y = 0.299 R + 0.587 G + 0.114 B                 (0..255)
    Y <- mean of 2x2 blocks (zero-padded to even size), i.e. conv2(Y, ones(2)/4, 'same')(1:2:end, 1:2:end)
    m = sqrt((Y * h_x)^2 + (Y * h_y)^2),  h_x = [[1, 0, -1]] * 3 rows / 3,  h_y = h_x^T   ('same', zero pad)
    GMS = (2 m_r m_d + c) / (m_r^2 + m_d^2 + c),  c = 170
    GMSD = std(GMS)                                 (sample std, N - 1, as MATLAB's std2)

Lower GMSD is better. Settings chosen for small images are in `ms_ssim_kernel_size`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GMSD_C = 170.0
LUMA = (0.299, 0.587, 0.114)
# Wang et al. 2003 scale weights; all five scales are kept, the window shrinks for small images.
MS_SSIM_BETAS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_MAX_KERNEL = 11
# PSNR of identical images is infinite; cap it so correlations stay defined.
PSNR_CAP_DB = 100.0


def luma(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) RGB -> (1, 1, H, W) luminance, same scale as the input."""
    weights = torch.tensor(LUMA, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image * weights).sum(0)[None, None]


def gradient_magnitude(gray: torch.Tensor) -> torch.Tensor:
    """(1, 1, H, W) -> (1, 1, H, W) Prewitt gradient magnitude with zero padding ('same')."""
    h_x = torch.tensor([[1.0, 0.0, -1.0]] * 3, dtype=gray.dtype, device=gray.device) / 3.0
    kernels = torch.stack([h_x, h_x.T])[:, None]  # (2, 1, 3, 3)
    grads = F.conv2d(gray, kernels, padding=1)  # cross-correlation: flips the sign only, magnitude unchanged
    return grads.pow(2).sum(1, keepdim=True).sqrt()


def gmsd(reference: torch.Tensor, distorted: torch.Tensor, c: float = GMSD_C) -> float:
    """GMSD of two (3, H, W) RGB images with values in 0..255 (module docstring); 0 for identical images."""
    if reference.shape != distorted.shape:
        raise ValueError(f"gmsd: images differ in shape {tuple(reference.shape)} vs {tuple(distorted.shape)}")
    maps = []
    for image in (reference, distorted):
        gray = luma(image.double())
        pad = (0, gray.shape[-1] % 2, 0, gray.shape[-2] % 2)
        gray = F.avg_pool2d(F.pad(gray, pad), 2)
        maps.append(gradient_magnitude(gray))
    m_r, m_d = maps
    similarity = (2 * m_r * m_d + c) / (m_r.pow(2) + m_d.pow(2) + c)
    return float(similarity.flatten().std(correction=1)) if similarity.numel() > 1 else 0.0


def ms_ssim_kernel_size(height: int, width: int, scales: int = len(MS_SSIM_BETAS)) -> int:
    """Largest odd window <= 11 that torchmetrics accepts at `scales` scales.

    torchmetrics needs min(H, W) // (scales - 1)^2 > kernel - 1: 11 from 176 px up; 128 px
    images (the synthetic benchmark) get 7. Below 32 px MS-SSIM is undefined (ValueError).
    """
    side = min(height, width)
    if side < 2**scales:
        raise ValueError(f"MS-SSIM with {scales} scales needs images of at least {2 ** scales} px, got {height}x{width}")
    limit = side // max(1, scales - 1) ** 2
    kernel = min(MS_SSIM_MAX_KERNEL, limit if limit % 2 else limit - 1)
    if kernel < 3:
        raise ValueError(f"MS-SSIM: image {height}x{width} is too small for a 3 px window at {scales} scales")
    return kernel


def full_reference(name: str, source: torch.Tensor, edited: torch.Tensor) -> float:
    """One metric between (3, H, W) float images in [0, 1]; higher is better except for GMSD."""
    from torchmetrics.functional.image import (
        multiscale_structural_similarity_index_measure,
        peak_signal_noise_ratio,
        structural_similarity_index_measure,
    )

    preds, target = edited[None].float(), source[None].float()  # float64 convs are ~10x slower on CPU
    if name == "psnr":
        return min(float(peak_signal_noise_ratio(preds, target, data_range=1.0)), PSNR_CAP_DB)
    if name == "ssim":
        return float(structural_similarity_index_measure(preds, target, data_range=1.0))
    if name == "ms-ssim":
        kernel = ms_ssim_kernel_size(*source.shape[-2:])
        return float(multiscale_structural_similarity_index_measure(
            preds, target, data_range=1.0, kernel_size=kernel, betas=MS_SSIM_BETAS, normalize="relu"
        ))
    if name == "gmsd":
        return gmsd(source * 255.0, edited * 255.0)
    raise ValueError(f"unknown full-reference metric {name!r}; choose psnr, ssim, ms-ssim or gmsd")
