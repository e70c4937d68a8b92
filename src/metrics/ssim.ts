// SSIM as pytorch_msssim.ssim (Wang et al. 2004): an 11-tap Gaussian window (sigma 1.5) applied
// separably with valid filtering to each channel, K1 = 0.01, K2 = 0.03, the SSIM map averaged
// over pixels, then over channels. Matching pytorch_msssim keeps our numbers comparable with the
// Diff-Pruning paper's consistency figures.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";

export interface SSIMOptions {
  /** The images' value range: 1 for [0, 1], 255 for [0, 255]; default 1. */
  dataRange?: number;
  /** Taps of the Gaussian window (odd); default 11. */
  winSize?: number;
  /** The window's sigma; default 1.5. */
  winSigma?: number;
  /** The stabilising constants [K1, K2]; default [0.01, 0.03]. */
  K?: [number, number];
}

/** pytorch_msssim's _fspecial_gauss_1d: a normalised 1-D Gaussian of `size` taps. */
export function gaussianWindow(size = 11, sigma = 1.5): Tensor {
  if (!Number.isInteger(size) || size < 1 || size % 2 === 0) throw new RangeError(`gaussianWindow: size must be an odd positive integer, got ${size}`);
  return torch.tidy(() => {
    const coords = torch.arange(0, size, 1, { dtype: "float32" }).sub(Math.floor(size / 2));
    const g = coords.square().div(-2 * sigma * sigma).exp();
    return g.div(g.sum());
  });
}

/**
 * Valid (unpadded) separable filtering of each channel of [N, C, H, W]: along H, then along W.
 * As pytorch_msssim, a dimension shorter than the window is left unfiltered.
 */
function gaussianFilter(x: Tensor, window: Tensor): Tensor {
  const c = x.shape[1]!;
  const k = window.shape[0]!;
  let out = x;
  if (x.shape[2]! >= k) out = torch.conv2d(out, window.reshape(1, 1, k, 1).expand(c, 1, k, 1).contiguous(), null, { groups: c });
  if (x.shape[3]! >= k) out = torch.conv2d(out, window.reshape(1, 1, 1, k).expand(c, 1, 1, k).contiguous(), null, { groups: c });
  return out;
}

/**
 * Per-image SSIM [N] of two image batches [N, C, H, W] (pytorch_msssim.ssim with
 * size_average=False); `.mean()` gives size_average=True.
 */
export function ssim(x: Tensor, y: Tensor, options: SSIMOptions = {}): Tensor {
  const { dataRange = 1, winSize = 11, winSigma = 1.5, K = [0.01, 0.03] } = options;
  if (x.ndim !== 4 || x.shape.join() !== y.shape.join())
    throw new Error(`ssim: expected two [N, C, H, W] batches of the same shape, got [${x.shape.join(", ")}] and [${y.shape.join(", ")}]`);
  if (x.dtype !== y.dtype) throw new Error(`ssim: the images have different dtypes (${x.dtype}, ${y.dtype}); convert one`);
  const c1 = (K[0] * dataRange) ** 2;
  const c2 = (K[1] * dataRange) ** 2;
  const channels = x.shape[1]!;
  return torch.tidy(() => {
    const window = gaussianWindow(winSize, winSigma).to(x.dtype);
    // One grouped convolution filters all five maps at once.
    const maps = gaussianFilter(torch.cat([x, y, x.mul(x), y.mul(y), x.mul(y)], 1), window);
    const [mu1, mu2, xx, yy, xy] = maps.split(channels, 1) as [Tensor, Tensor, Tensor, Tensor, Tensor];
    const mu1Sq = mu1.square();
    const mu2Sq = mu2.square();
    const mu12 = mu1.mul(mu2);
    const sigma1Sq = xx.sub(mu1Sq);
    const sigma2Sq = yy.sub(mu2Sq);
    const sigma12 = xy.sub(mu12);
    const csMap = sigma12.mul(2).add(c2).div(sigma1Sq.add(sigma2Sq).add(c2));
    const ssimMap = mu12.mul(2).add(c1).div(mu1Sq.add(mu2Sq).add(c1)).mul(csMap);
    return ssimMap.flatten(2).mean(-1).mean(1);
  });
}
