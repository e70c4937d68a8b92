// Element-wise math (with broadcasting and scalars), comparisons, reductions, sorting, matmul,
// linear algebra, and the in-place updates parameters need.
#include "common.h"

using namespace dp;

namespace {

Napi::Value W(const Napi::CallbackInfo& info, at::Tensor t) { return Wrap(info.Env(), std::move(t)); }

#define DP_UNARY(name, expr)                     \
  DP_FN(name) {                                  \
    const at::Tensor& x = TensorArg(info, 0);    \
    return W(info, expr);                        \
  }

DP_UNARY(neg, at::neg(x))
DP_UNARY(abs, at::abs(x))
DP_UNARY(sign, at::sign(x))
DP_UNARY(sqrt, at::sqrt(x))
DP_UNARY(rsqrt, at::rsqrt(x))
DP_UNARY(exp, at::exp(x))
DP_UNARY(log, at::log(x))
DP_UNARY(sin, at::sin(x))
DP_UNARY(cos, at::cos(x))
DP_UNARY(tanh, at::tanh(x))
DP_UNARY(sigmoid, at::sigmoid(x))
DP_UNARY(silu, at::silu(x))
DP_UNARY(relu, at::relu(x))
DP_UNARY(floor, at::floor(x))
DP_UNARY(ceil, at::ceil(x))
DP_UNARY(round, at::round(x))
DP_UNARY(reciprocal, at::reciprocal(x))
DP_UNARY(logicalNot, at::logical_not(x))
DP_UNARY(isnan, at::isnan(x))
DP_UNARY(isfinite, at::isfinite(x))
DP_UNARY(trace, at::trace(x))

// Binary ops (a, b, scalarMask): either operand may be a number (bit 0: a, bit 1: b).
#define DP_BINARY(name, fn)                                           \
  DP_FN(name) {                                                       \
    const int64_t mask = ScalarMaskArg(info, 2);                      \
    const at::Tensor a = OperandArg(info, 0, mask & 1);               \
    return W(info, fn(a, OperandArg(info, 1, mask & 2)));             \
  }

DP_BINARY(add, at::add)
DP_BINARY(sub, at::sub)
DP_BINARY(mul, at::mul)
DP_BINARY(div, at::div)
DP_BINARY(pow, at::pow)
DP_BINARY(maximum, at::maximum)
DP_BINARY(minimum, at::minimum)
DP_BINARY(remainder, at::remainder)
DP_BINARY(eq, at::eq)
DP_BINARY(ne, at::ne)
DP_BINARY(lt, at::lt)
DP_BINARY(le, at::le)
DP_BINARY(gt, at::gt)
DP_BINARY(ge, at::ge)
DP_BINARY(logicalAnd, at::logical_and)
DP_BINARY(logicalOr, at::logical_or)
DP_BINARY(matmul, at::matmul)
DP_BINARY(bmm, at::bmm)

// where(cond, a, b, scalarMask): a (bit 0) and b (bit 1) may be numbers.
DP_FN(where) {
  const int64_t mask = ScalarMaskArg(info, 3);
  return W(info, at::where(TensorArg(info, 0), OperandArg(info, 1, mask & 1), OperandArg(info, 2, mask & 2)));
}

// clamp(t, min | null, max | null)
DP_FN(clamp) {
  auto lo = OptScalarArg(info, 1), hi = OptScalarArg(info, 2);
  if (!lo && !hi) throw ArgError("clamp needs a min or a max");
  return W(info, at::clamp(TensorArg(info, 0), lo, hi));
}

// baddbmm(input, batch1, batch2, beta, alpha) = beta * input + alpha * batch1 @ batch2.
// With beta 0 the input is ignored (NaN in it too), as PyTorch documents; libtorch 1.13's
// small-matrix CPU kernel instead reads uninitialised memory then (pytorch#80588), so that case
// runs as alpha * bmm.
DP_FN(baddbmm) {
  const at::Tensor& input = TensorArg(info, 0);
  const at::Tensor &b1 = TensorArg(info, 1), &b2 = TensorArg(info, 2);
  const at::Scalar beta = ScalarArg(info, 3), alpha = ScalarArg(info, 4);
  if (beta.toDouble() == 0) {
    at::Tensor out = at::bmm(b1, b2);
    return W(info, (alpha.toDouble() == 1 ? out : out.mul_(alpha)).expand(at::infer_size(input.sizes(), out.sizes())).contiguous());
  }
  return W(info, at::baddbmm(input, b1, b2, beta, alpha));
}

// Reductions take (t, dims | null, keepdim); null dims reduce over everything.
DP_FN(sum) {
  const auto& t = TensorArg(info, 0);
  auto dims = OptIntListArg(info, 1);
  auto dtype = OptDTypeArg(info, 3);
  if (!dims) return W(info, at::sum(t, dtype));
  return W(info, at::sum(t, *dims, BoolArg(info, 2), dtype));
}

DP_FN(mean) {
  const auto& t = TensorArg(info, 0);
  auto dims = OptIntListArg(info, 1);
  if (!dims) return W(info, at::mean(t));
  return W(info, at::mean(t, *dims, BoolArg(info, 2)));
}

// var(t, dims | null, correction, keepdim) and std: correction 1 is the unbiased estimate.
DP_FN(var) {
  auto dims = OptIntListArg(info, 1);
  return W(info, at::var(TensorArg(info, 0), dims ? at::OptionalIntArrayRef(*dims) : at::OptionalIntArrayRef(), OptIntArg(info, 2), BoolArg(info, 3)));
}

DP_FN_NAMED(stdDev, "std") {
  auto dims = OptIntListArg(info, 1);
  return W(info, at::std(TensorArg(info, 0), dims ? at::OptionalIntArrayRef(*dims) : at::OptionalIntArrayRef(), OptIntArg(info, 2), BoolArg(info, 3)));
}

// norm(t, p, dims | null, keepdim)
DP_FN(norm) {
  const auto& t = TensorArg(info, 0);
  auto p = ScalarArg(info, 1);
  auto dims = OptIntListArg(info, 2);
  if (!dims) return W(info, at::norm(t, p));
  return W(info, at::norm(t, p, *dims, BoolArg(info, 3)));
}

// max/min(t, dim | null, keepdim): the values; argmax/argmin the indices.
DP_FN(max) {
  const auto& t = TensorArg(info, 0);
  auto dim = OptIntArg(info, 1);
  if (!dim) return W(info, at::max(t));
  return W(info, std::get<0>(at::max(t, *dim, BoolArg(info, 2))));
}

DP_FN(min) {
  const auto& t = TensorArg(info, 0);
  auto dim = OptIntArg(info, 1);
  if (!dim) return W(info, at::min(t));
  return W(info, std::get<0>(at::min(t, *dim, BoolArg(info, 2))));
}

DP_FN(argmax) { return W(info, at::argmax(TensorArg(info, 0), OptIntArg(info, 1), BoolArg(info, 2))); }
DP_FN(argmin) { return W(info, at::argmin(TensorArg(info, 0), OptIntArg(info, 1), BoolArg(info, 2))); }

// sort(t, dim, descending) -> [values, indices]; argsort the indices alone. Stable, so equal
// scores keep their order (pruning ties break by channel index).
DP_FN(sort) {
  auto r = at::sort(TensorArg(info, 0), /*stable=*/true, IntArg(info, 1), BoolArg(info, 2));
  return WrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
}

DP_FN(argsort) {
  return W(info, std::get<1>(at::sort(TensorArg(info, 0), /*stable=*/true, IntArg(info, 1), BoolArg(info, 2))));
}

// topk(t, k, dim, largest, sorted) -> [values, indices]
DP_FN(topk) {
  auto r = at::topk(TensorArg(info, 0), IntArg(info, 1), IntArg(info, 2), BoolArg(info, 3), BoolArg(info, 4));
  return WrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
}

DP_FN(cumsum) { return W(info, at::cumsum(TensorArg(info, 0), IntArg(info, 1))); }
DP_FN(cumprod) { return W(info, at::cumprod(TensorArg(info, 0), IntArg(info, 1))); }
DP_FN(softmax) { return W(info, at::softmax(TensorArg(info, 0), IntArg(info, 1))); }
DP_FN(logSoftmax) { return W(info, at::log_softmax(TensorArg(info, 0), IntArg(info, 1))); }

// eigh(t, uplo) -> [eigenvalues ascending, eigenvectors as columns], for symmetric matrices.
DP_FN(eigh) {
  std::string uplo = info.Length() > 1 && info[1].IsString() ? StringArg(info, 1) : "L";
  auto r = at::linalg_eigh(TensorArg(info, 0), uplo);
  return WrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
}

// allclose-style helpers live in TypeScript; equal is exact (same shape and values).
DP_FN(equal) { return Napi::Boolean::New(info.Env(), at::equal(TensorArg(info, 0), TensorArg(info, 1))); }

// In-place updates (PyTorch's trailing underscore). They return the same handle's tensor.
DP_FN(copy_) {
  at::Tensor t = TensorArg(info, 0);
  t.copy_(TensorArg(info, 1));
  return info[0];
}

DP_FN(fill_) {
  at::Tensor t = TensorArg(info, 0);
  t.fill_(ScalarArg(info, 1));
  return info[0];
}

DP_FN(zero_) {
  at::Tensor t = TensorArg(info, 0);
  t.zero_();
  return info[0];
}

// add_(t, other, alpha, otherIsScalar): t += alpha * other
DP_FN(add_) {
  at::Tensor t = TensorArg(info, 0);
  t.add_(OperandArg(info, 1, BoolArg(info, 3)), ScalarArg(info, 2));
  return info[0];
}

// mul_(t, other, otherIsScalar)
DP_FN(mul_) {
  at::Tensor t = TensorArg(info, 0);
  t.mul_(OperandArg(info, 1, BoolArg(info, 2)));
  return info[0];
}

Register reg({
    {"neg", neg},           {"abs", abs},           {"sign", sign},           {"sqrt", sqrt},
    {"rsqrt", rsqrt},       {"exp", exp},           {"log", log},             {"sin", sin},
    {"cos", cos},           {"tanh", tanh},         {"sigmoid", sigmoid},     {"silu", silu},
    {"relu", relu},         {"floor", floor},       {"ceil", ceil},           {"round", round},
    {"reciprocal", reciprocal}, {"logicalNot", logicalNot}, {"isnan", isnan}, {"isfinite", isfinite},
    {"trace", trace},       {"add", add},           {"sub", sub},             {"mul", mul},
    {"div", div},           {"pow", pow},           {"maximum", maximum},     {"minimum", minimum},
    {"remainder", remainder}, {"eq", eq},           {"ne", ne},               {"lt", lt},
    {"le", le},             {"gt", gt},             {"ge", ge},               {"logicalAnd", logicalAnd},
    {"logicalOr", logicalOr}, {"matmul", matmul},   {"bmm", bmm},             {"where", where},
    {"clamp", clamp},       {"baddbmm", baddbmm},   {"sum", sum},             {"mean", mean},
    {"var", var},           {"std", stdDev},           {"norm", norm},           {"max", max},
    {"min", min},           {"argmax", argmax},     {"argmin", argmin},       {"sort", sort},
    {"argsort", argsort},   {"topk", topk},         {"cumsum", cumsum},       {"cumprod", cumprod},
    {"softmax", softmax},   {"logSoftmax", logSoftmax}, {"eigh", eigh},       {"equal", equal},
    {"copy_", copy_},       {"fill_", fill_},       {"zero_", zero_},         {"add_", add_},
    {"mul_", mul_},
});

}  // namespace
