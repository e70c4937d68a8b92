// Tensor creation: constants, ranges, random draws from the global generator, typed-array I/O.
#include "common.h"

#include <cstring>

using namespace dp;

namespace {

void CheckShape(const std::vector<int64_t>& shape) {
  for (auto s : shape)
    if (s < 0) throw ArgError("shape entries must be non-negative");
}

// zeros(shape, dtype, device) and friends: the shape is argument 0, dtype 1, device 2.
DP_FN(empty) {
  auto shape = IntListArg(info, 0);
  CheckShape(shape);
  return Wrap(info.Env(), at::empty(shape, OptionsArg(info, 1, 2)));
}

DP_FN(zeros) {
  auto shape = IntListArg(info, 0);
  CheckShape(shape);
  return Wrap(info.Env(), at::zeros(shape, OptionsArg(info, 1, 2)));
}

DP_FN(ones) {
  auto shape = IntListArg(info, 0);
  CheckShape(shape);
  return Wrap(info.Env(), at::ones(shape, OptionsArg(info, 1, 2)));
}

// full(shape, value, dtype, device)
DP_FN(full) {
  auto shape = IntListArg(info, 0);
  CheckShape(shape);
  return Wrap(info.Env(), at::full(shape, ScalarArg(info, 1), OptionsArg(info, 2, 3)));
}

// arange(start, end, step, dtype, device); dtype null means int64 for integral arguments.
DP_FN(arange) {
  auto start = ScalarArg(info, 0), end = ScalarArg(info, 1), step = ScalarArg(info, 2);
  auto dtype = OptDTypeArg(info, 3);
  bool integral = start.isIntegral(false) && end.isIntegral(false) && step.isIntegral(false);
  auto opts = at::TensorOptions().dtype(dtype.value_or(integral ? at::kLong : at::kFloat)).device(DeviceArg(info, 4));
  return Wrap(info.Env(), at::arange(start, end, step, opts));
}

// linspace(start, end, steps, dtype, device)
DP_FN(linspace) {
  return Wrap(info.Env(), at::linspace(ScalarArg(info, 0), ScalarArg(info, 1), IntArg(info, 2), OptionsArg(info, 3, 4)));
}

DP_FN(rand) {
  auto shape = IntListArg(info, 0);
  CheckShape(shape);
  return Wrap(info.Env(), at::rand(shape, OptionsArg(info, 1, 2)));
}

DP_FN(randn) {
  auto shape = IntListArg(info, 0);
  CheckShape(shape);
  return Wrap(info.Env(), at::randn(shape, OptionsArg(info, 1, 2)));
}

// randint(low, high, shape, dtype, device): integers in [low, high).
DP_FN(randint) {
  auto shape = IntListArg(info, 2);
  CheckShape(shape);
  auto dtype = OptDTypeArg(info, 3);
  auto opts = at::TensorOptions().dtype(dtype.value_or(at::kLong)).device(DeviceArg(info, 4));
  return Wrap(info.Env(), at::randint(IntArg(info, 0), IntArg(info, 1), shape, opts));
}

// randperm(n, device)
DP_FN(randperm) {
  return Wrap(info.Env(), at::randperm(IntArg(info, 0), at::TensorOptions().dtype(at::kLong).device(DeviceArg(info, 1))));
}

size_t ItemSize(at::ScalarType t) { return c10::elementSize(t); }

// fromBuffer(typedArray, shape, dtype, device): copies the typed array's bytes. float16 and
// bfloat16 (given as Uint16Array bits) are widened to float32, as checkpoints are loaded.
DP_FN(fromBuffer) {
  if (!info[0].IsTypedArray()) throw ArgError("argument 0 must be a typed array");
  auto arr = info[0].As<Napi::TypedArray>();
  auto shape = IntListArg(info, 1);
  CheckShape(shape);
  at::ScalarType dtype = DTypeArg(info, 2);
  at::Device device = DeviceArg(info, 3);
  int64_t numel = 1;
  for (auto s : shape) numel *= s;
  const size_t need = static_cast<size_t>(numel) * ItemSize(dtype);
  if (arr.ByteLength() != need)
    throw ArgError("data holds " + std::to_string(arr.ByteLength()) + " bytes but shape " + c10::str(at::IntArrayRef(shape)) +
                   " of " + DTypeName(dtype) + " needs " + std::to_string(need));
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
  const auto* src = static_cast<const uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
  if (need > 0) std::memcpy(t.data_ptr(), src, need);
  if (dtype == at::kHalf || dtype == at::kBFloat16) t = t.to(at::kFloat);
  if (device != t.device()) t = t.to(device);
  return Wrap(info.Env(), t);
}

// toBuffer(t): a new ArrayBuffer with the tensor's elements in row-major order (copied to CPU).
DP_FN(toBuffer) {
  at::Tensor t = TensorArg(info, 0).detach().to(at::kCPU).contiguous();
  const size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
  auto buf = Napi::ArrayBuffer::New(info.Env(), bytes);
  if (bytes > 0) std::memcpy(buf.Data(), t.data_ptr(), bytes);
  return buf;
}

// item(t): the value of a one-element tensor as a JS number (bool as 0/1).
DP_FN(item) {
  const auto& t = TensorArg(info, 0);
  if (t.numel() != 1)
    throw ArgError("item() needs a tensor with one element, this one has " + std::to_string(t.numel()));
  return Napi::Number::New(info.Env(), t.item().toDouble());
}

Register reg({
    {"empty", empty},
    {"zeros", zeros},
    {"ones", ones},
    {"full", full},
    {"arange", arange},
    {"linspace", linspace},
    {"rand", rand},
    {"randn", randn},
    {"randint", randint},
    {"randperm", randperm},
    {"fromBuffer", fromBuffer},
    {"toBuffer", toBuffer},
    {"item", item},
});

}  // namespace
