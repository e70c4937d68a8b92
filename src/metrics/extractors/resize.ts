// Bilinear resize as F.interpolate(mode="bilinear", align_corners=False, antialias=False), done
// as two matmuls against interpolation matrices: out = R_h @ x @ R_w^T.
import * as torch from "../../torch/index.js";
import type { Tensor } from "../../torch/index.js";

/**
 * The [outSize, inSize] matrix of 1-D linear interpolation with half-pixel centres, as
 * PyTorch's upsample_bilinear2d: src = (dst + 0.5) * in / out - 0.5, clamped at 0.
 */
export function bilinearMatrix(inSize: number, outSize: number): Tensor {
  const m = new Float32Array(outSize * inSize);
  const scale = inSize / outSize;
  for (let i = 0; i < outSize; i++) {
    const src = Math.max((i + 0.5) * scale - 0.5, 0);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const i1 = Math.min(i0 + 1, inSize - 1);
    const lambda = src - i0;
    m[i * inSize + i0]! += 1 - lambda;
    m[i * inSize + i1]! += lambda;
  }
  return torch.tensor(m, { shape: [outSize, inSize] });
}

/** Resizes [N, C, H, W] to [N, C, height, width] bilinearly. */
export function resizeBilinear(x: Tensor, height: number, width: number): Tensor {
  if (x.ndim !== 4) throw new Error(`resizeBilinear: expected [N, C, H, W], got [${x.shape.join(", ")}]`);
  return torch.tidy(() => {
    const rh = bilinearMatrix(x.shape[2]!, height).to(x.dtype);
    const rw = bilinearMatrix(x.shape[3]!, width).to(x.dtype);
    return rh.matmul(x).matmul(rw.transpose(0, 1));
  });
}
