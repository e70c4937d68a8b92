// Autograd: libtorch's own, exposed PyTorch-style. GradMode is thread-local; every call here runs
// on the JS thread, so a no-grad scope set from JS covers all ops it runs.
#include "common.h"

#include <ATen/core/grad_mode.h>

using namespace dp;

namespace {

DP_FN(requiresGrad) { return Napi::Boolean::New(info.Env(), TensorArg(info, 0).requires_grad()); }

DP_FN(setRequiresGrad) {
  at::Tensor t = TensorArg(info, 0);
  t.requires_grad_(BoolArg(info, 1));
  return info[0];
}

DP_FN(isLeaf) { return Napi::Boolean::New(info.Env(), TensorArg(info, 0).is_leaf()); }

DP_FN(retainGrad) {
  TensorArg(info, 0).retain_grad();
  return info.Env().Undefined();
}

// backward(t, gradient | null, retainGraph)
DP_FN(backward) {
  const auto& t = TensorArg(info, 0);
  auto grad = OptTensorArg(info, 1);
  if (!t.requires_grad())
    throw ArgError("this tensor does not require grad and has no grad_fn: was it computed inside noGrad, or from parameters without requiresGrad?");
  if (!grad && t.numel() != 1)
    throw ArgError("backward() without a gradient needs a one-element (scalar) output, this one has shape " + c10::str(t.sizes()));
  bool retain = info.Length() > 2 && info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
  t.backward(grad ? *grad : at::Tensor(), retain, false);
  return info.Env().Undefined();
}

// grad(t): the accumulated gradient, or null.
DP_FN(grad) { return Wrap(info.Env(), TensorArg(info, 0).grad()); }

// setGrad(t, gradient | null)
DP_FN(setGrad) {
  at::Tensor t = TensorArg(info, 0);
  auto g = OptTensorArg(info, 1);
  if (g && (g->sizes() != t.sizes() || g->scalar_type() != t.scalar_type() || g->device() != t.device()))
    throw ArgError("the gradient must match the tensor: shape " + c10::str(t.sizes()) + " " + DTypeName(t.scalar_type()) + " on " +
                   t.device().str() + ", got " + c10::str(g->sizes()) + " " + DTypeName(g->scalar_type()) + " on " + g->device().str());
  t.mutable_grad() = g ? *g : at::Tensor();
  return info.Env().Undefined();
}

// zeroGrad(params[]): sets every gradient to none, as optimizer.zero_grad(set_to_none=True).
DP_FN(zeroGrad) {
  for (auto& p : TensorListArg(info, 0)) p.mutable_grad() = at::Tensor();
  return info.Env().Undefined();
}

DP_FN(detach) { return Wrap(info.Env(), TensorArg(info, 0).detach()); }

// setGradEnabled(enabled) -> the previous state
DP_FN(setGradEnabled) {
  bool prev = at::GradMode::is_enabled();
  at::GradMode::set_enabled(BoolArg(info, 0));
  return Napi::Boolean::New(info.Env(), prev);
}

DP_FN(isGradEnabled) { return Napi::Boolean::New(info.Env(), at::GradMode::is_enabled()); }

Register reg({
    {"requiresGrad", requiresGrad}, {"setRequiresGrad", setRequiresGrad}, {"isLeaf", isLeaf},
    {"retainGrad", retainGrad},     {"backward", backward},               {"grad", grad},
    {"setGrad", setGrad},           {"zeroGrad", zeroGrad},               {"detach", detach},
    {"setGradEnabled", setGradEnabled}, {"isGradEnabled", isGradEnabled},
});

}  // namespace
