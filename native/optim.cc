// Optimizer kernels: one native call per step over all parameters, never per element in JS.
#include "common.h"

#include <ATen/core/grad_mode.h>

#include <cmath>

using namespace dp;

namespace {

void SameLength(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b, const char* what) {
  if (a.size() != b.size())
    throw ArgError(std::string(what) + " has " + std::to_string(b.size()) + " tensors but there are " + std::to_string(a.size()) + " parameters");
}

// adamwStep(params[], expAvg[], expAvgSq[], step, lr, beta1, beta2, eps, weightDecay), as
// torch.optim.AdamW (amsgrad off): decoupled decay, then Adam with bias correction at `step`
// (1-based, already incremented). Parameters without a gradient are skipped.
DP_FN(adamwStep) {
  auto params = TensorListArg(info, 0);
  auto m = TensorListArg(info, 1);
  auto v = TensorListArg(info, 2);
  SameLength(params, m, "expAvg");
  SameLength(params, v, "expAvgSq");
  const int64_t step = IntArg(info, 3);
  const double lr = DoubleArg(info, 4), beta1 = DoubleArg(info, 5), beta2 = DoubleArg(info, 6);
  const double eps = DoubleArg(info, 7), wd = DoubleArg(info, 8);
  if (step < 1) throw ArgError("step must be >= 1");
  const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(beta2, static_cast<double>(step)));
  const double step_size = lr / bc1;
  for (size_t i = 0; i < params.size(); ++i)  // check everything before changing anything
    if (m[i].sizes() != params[i].sizes() || v[i].sizes() != params[i].sizes())
      throw ArgError("optimizer state " + std::to_string(i) + " has shape " + c10::str(m[i].sizes()) + " but the parameter has " +
                     c10::str(params[i].sizes()));
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) {
    at::Tensor p = params[i];
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    if (wd != 0) p.mul_(1.0 - lr * wd);
    m[i].lerp_(g, 1.0 - beta1);
    v[i].mul_(beta2).addcmul_(g, g, 1.0 - beta2);
    at::Tensor denom = (v[i].sqrt() / bc2_sqrt).add_(eps);
    p.addcdiv_(m[i], denom, -step_size);
  }
  return info.Env().Undefined();
}

// clipGradNorm(params[], maxNorm) -> the total L2 norm of all gradients before clipping, as
// torch.nn.utils.clip_grad_norm_ (scale by maxNorm / (total + 1e-6) when that is below 1).
DP_FN(clipGradNorm) {
  auto params = TensorListArg(info, 0);
  const double max_norm = DoubleArg(info, 1);
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> norms;
  for (auto& p : params)
    if (p.grad().defined()) norms.push_back(at::linalg_vector_norm(p.grad(), 2));
  if (norms.empty()) return Napi::Number::New(info.Env(), 0.0);
  at::Tensor total = at::linalg_vector_norm(at::stack(norms), 2);
  const double total_v = total.item<double>();
  const double coef = max_norm / (total_v + 1e-6);
  if (coef < 1.0)
    for (auto& p : params)
      if (p.grad().defined()) p.mutable_grad().mul_(coef);
  return Napi::Number::New(info.Env(), total_v);
}

// emaUpdate(emaParams[], params[], decay): ema = decay * ema + (1 - decay) * param
DP_FN(emaUpdate) {
  auto ema = TensorListArg(info, 0);
  auto params = TensorListArg(info, 1);
  SameLength(ema, params, "params");
  const double decay = DoubleArg(info, 2);
  if (!(decay >= 0 && decay <= 1)) throw ArgError("decay must be in [0, 1]");
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < ema.size(); ++i) ema[i].lerp_(params[i].to(ema[i].scalar_type()), 1.0 - decay);
  return info.Env().Undefined();
}

Register reg({
    {"adamwStep", adamwStep},
    {"clipGradNorm", clipGradNorm},
    {"emaUpdate", emaUpdate},
});

}  // namespace
