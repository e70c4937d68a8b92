// Neural-network functional ops (torch.nn.functional).
#include "common.h"

using namespace dp;

namespace {

Napi::Value W(const Napi::CallbackInfo& info, at::Tensor t) { return Wrap(info.Env(), std::move(t)); }

at::Tensor Opt(const c10::optional<at::Tensor>& t) { return t ? *t : at::Tensor(); }

int64_t Reduction(const Napi::CallbackInfo& info, size_t i) {
  const std::string r = StringArg(info, i);
  if (r == "mean") return at::Reduction::Mean;
  if (r == "sum") return at::Reduction::Sum;
  if (r == "none") return at::Reduction::None;
  throw ArgError("reduction must be 'mean', 'sum' or 'none', got '" + r + "'");
}

// conv2d(x, weight, bias | null, stride[2], padding[2], dilation[2], groups)
DP_FN(conv2d) {
  return W(info, at::conv2d(TensorArg(info, 0), TensorArg(info, 1), Opt(OptTensorArg(info, 2)), IntListArg(info, 3),
                            IntListArg(info, 4), IntListArg(info, 5), IntArg(info, 6)));
}

// linear(x, weight [out, in], bias | null)
DP_FN(linear) { return W(info, at::linear(TensorArg(info, 0), TensorArg(info, 1), Opt(OptTensorArg(info, 2)))); }

// conv1x1(x [N, in, ...], weight [out, in], bias | null): a linear layer over the channels (dim 1), run as a
// 1x1 convolution so that oneDNN takes it in the input's layout (no token transposes, channels_last kept).
DP_FN(conv1x1) {
  at::Tensor x = TensorArg(info, 0), w = TensorArg(info, 1);
  if (w.dim() != 2) throw ArgError("conv1x1: weight must be [out, in], got " + std::to_string(w.dim()) + " dims");
  if (x.dim() != 4) throw ArgError("conv1x1: input must be [N, C, H, W], got " + std::to_string(x.dim()) + " dims");
  if (x.size(1) != w.size(1))
    throw ArgError("conv1x1: input has " + std::to_string(x.size(1)) + " channels, weight takes " + std::to_string(w.size(1)));
  return W(info, at::conv2d(x, w.view({w.size(0), w.size(1), 1, 1}), Opt(OptTensorArg(info, 2))));
}

// groupNorm(x, numGroups, weight | null, bias | null, eps)
DP_FN(groupNorm) {
  return W(info, at::group_norm(TensorArg(info, 0), IntArg(info, 1), Opt(OptTensorArg(info, 2)), Opt(OptTensorArg(info, 3)),
                                DoubleArg(info, 4), /*cudnn_enabled=*/true));
}

// layerNorm(x, normalizedShape, weight | null, bias | null, eps)
DP_FN(layerNorm) {
  return W(info, at::layer_norm(TensorArg(info, 0), IntListArg(info, 1), Opt(OptTensorArg(info, 2)), Opt(OptTensorArg(info, 3)),
                                DoubleArg(info, 4)));
}

// batchNorm(x, runningMean | null, runningVar | null, weight | null, bias | null, training, momentum, eps)
DP_FN(batchNorm) {
  return W(info, at::batch_norm(TensorArg(info, 0), Opt(OptTensorArg(info, 3)), Opt(OptTensorArg(info, 4)), Opt(OptTensorArg(info, 1)),
                                Opt(OptTensorArg(info, 2)), BoolArg(info, 5), DoubleArg(info, 6), DoubleArg(info, 7), true));
}

// interpolateNearest(x [N,C,H,W], size [h,w] | null, scaleFactor [sh,sw] | null), as
// F.interpolate(mode="nearest"): with a scale factor the output is floor(in * scale) and the
// source index is floor(out_index / scale).
DP_FN(interpolateNearest) {
  const auto& x = TensorArg(info, 0);
  if (x.dim() != 4) throw ArgError("interpolateNearest expects a 4-D input [N, C, H, W], got " + std::to_string(x.dim()) + "-D");
  auto size = OptIntListArg(info, 1);
  auto scale = OptIntListArg(info, 2);  // integers only; fractional factors are not needed here
  if (size.has_value() == scale.has_value()) throw ArgError("give exactly one of size and scaleFactor");
  if (size) {
    if (size->size() != 2) throw ArgError("size must have 2 entries");
    return W(info, at::upsample_nearest2d(x, *size));
  }
  if (scale->size() != 2 || (*scale)[0] <= 0 || (*scale)[1] <= 0) throw ArgError("scaleFactor must be 2 positive integers");
  std::vector<int64_t> out = {x.size(2) * (*scale)[0], x.size(3) * (*scale)[1]};
  return W(info, at::upsample_nearest2d(x, out, static_cast<double>((*scale)[0]), static_cast<double>((*scale)[1])));
}

// pad(x, pads [left, right, top, bottom, ...], mode, value)
DP_FN(pad) {
  const auto& x = TensorArg(info, 0);
  auto pads = IntListArg(info, 1);
  const std::string mode = StringArg(info, 2);
  if (pads.size() % 2 != 0) throw ArgError("pads must have an even number of entries");
  if (mode == "constant") return W(info, at::constant_pad_nd(x, pads, ScalarArg(info, 3)));
  if (mode == "reflect" && pads.size() == 4) return W(info, at::reflection_pad2d(x, pads));
  if (mode == "replicate" && pads.size() == 4) return W(info, at::replication_pad2d(x, pads));
  throw ArgError("pad mode must be 'constant', or 'reflect'/'replicate' with 4 pads, got '" + mode + "'");
}

// dropout(x, p, training)
DP_FN(dropout) {
  double p = DoubleArg(info, 1);
  if (!(p >= 0 && p <= 1)) throw ArgError("dropout probability must be in [0, 1], got " + std::to_string(p));
  return W(info, at::dropout(TensorArg(info, 0), p, BoolArg(info, 2)));
}

// mseLoss(input, target, reduction)
DP_FN(mseLoss) { return W(info, at::mse_loss(TensorArg(info, 0), TensorArg(info, 1), Reduction(info, 2))); }

// crossEntropy(logits [N,C], target int64 [N], reduction)
DP_FN(crossEntropy) {
  return W(info, at::cross_entropy_loss(TensorArg(info, 0), TensorArg(info, 1), {}, Reduction(info, 2), -100, 0.0));
}

// avgPool2d(x, kernel[2], stride[2], padding[2]) and maxPool2d likewise.
DP_FN(avgPool2d) {
  return W(info, at::avg_pool2d(TensorArg(info, 0), IntListArg(info, 1), IntListArg(info, 2), IntListArg(info, 3)));
}

DP_FN(maxPool2d) {
  return W(info, at::max_pool2d(TensorArg(info, 0), IntListArg(info, 1), IntListArg(info, 2), IntListArg(info, 3)));
}

DP_FN(adaptiveAvgPool2d) { return W(info, at::adaptive_avg_pool2d(TensorArg(info, 0), IntListArg(info, 1))); }

Register reg({
    {"conv2d", conv2d},       {"linear", linear},       {"conv1x1", conv1x1},     {"groupNorm", groupNorm},
    {"layerNorm", layerNorm}, {"batchNorm", batchNorm}, {"interpolateNearest", interpolateNearest},
    {"pad", pad},             {"dropout", dropout},     {"mseLoss", mseLoss},
    {"crossEntropy", crossEntropy}, {"avgPool2d", avgPool2d}, {"maxPool2d", maxPool2d},
    {"adaptiveAvgPool2d", adaptiveAvgPool2d},
});

}  // namespace
