// Tensor handles, argument checks and error conversion.
#include "common.h"

#include <ATen/ScalarOps.h>

#include <cmath>

namespace dp {
namespace {

struct Slot {
  at::Tensor tensor;
  int64_t bytes = 0;
  uint32_t generation = 0;
  bool alive = false;
};

constexpr double kIndexSpan = 67108864.0;  // 2^26 slots; the generation takes the next 27 bits
constexpr uint32_t kGenerations = 1u << 27;

std::vector<Slot> g_slots;
std::vector<uint32_t> g_free;
int64_t g_live_tensors = 0;
int64_t g_live_bytes = 0;
int64_t g_unreported = 0;  // bytes not yet reported to V8

// Tells V8 about native memory in steps of 1 MiB or more: a report per op costs more than the op
// for small tensors, and V8 only needs the trend to schedule collections.
void ReportExternal(napi_env env, int64_t delta) {
  g_unreported += delta;
  if (g_unreported > -(1 << 20) && g_unreported < (1 << 20)) return;
  int64_t ignored;
  napi_adjust_external_memory(env, g_unreported, &ignored);
  g_unreported = 0;
}

int64_t BytesOf(const at::Tensor& t) {
  return t.defined() ? static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size()) : 0;
}

[[noreturn]] void Fail(size_t i, const std::string& what) {
  throw ArgError("argument " + std::to_string(i) + " must be " + what);
}

// The slot a handle names, or null when v is not a handle this addon made.
Slot* SlotOf(const Napi::Value& v) {
  double d;
  if (napi_get_value_double(v.Env(), v, &d) != napi_ok) return nullptr;
  if (!(d >= 0 && d < kIndexSpan * kGenerations) || std::floor(d) != d) return nullptr;
  const auto index = static_cast<uint64_t>(std::fmod(d, kIndexSpan));
  const auto generation = static_cast<uint32_t>(std::floor(d / kIndexSpan));
  if (index >= g_slots.size()) return nullptr;
  Slot* s = &g_slots[index];
  if (s->generation != generation) {
    static Slot stale;  // a handle whose slot was freed and reused: it was disposed
    return &stale;
  }
  return s;
}

bool Absent(const Napi::Value& v) { return v.IsUndefined() || v.IsNull(); }

}  // namespace

Napi::Value Wrap(Napi::Env env, at::Tensor tensor) {
  if (!tensor.defined()) return env.Null();
  uint32_t index;
  if (!g_free.empty()) {
    index = g_free.back();
    g_free.pop_back();
  } else {
    if (g_slots.size() >= static_cast<size_t>(kIndexSpan)) throw std::runtime_error("too many live tensors (2^26): dispose some");
    index = static_cast<uint32_t>(g_slots.size());
    g_slots.emplace_back();
  }
  Slot& s = g_slots[index];
  s.bytes = BytesOf(tensor);
  s.tensor = std::move(tensor);
  s.alive = true;
  g_live_tensors += 1;
  g_live_bytes += s.bytes;
  ReportExternal(env, s.bytes);
  return Napi::Number::New(env, static_cast<double>(index) + static_cast<double>(s.generation) * kIndexSpan);
}

Napi::Value WrapList(Napi::Env env, const std::vector<at::Tensor>& tensors) {
  auto out = Napi::Array::New(env, tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) out.Set(i, Wrap(env, tensors[i]));
  return out;
}

bool Dispose(Napi::Env env, const Napi::Value& v) {
  Slot* s = SlotOf(v);
  if (s == nullptr) throw ArgError("argument 0 must be a Tensor");
  if (!s->alive) return false;
  const int64_t bytes = s->bytes;
  s->tensor = at::Tensor();
  s->alive = false;
  s->bytes = 0;
  s->generation = (s->generation + 1) % kGenerations;
  g_free.push_back(static_cast<uint32_t>(s - g_slots.data()));
  g_live_tensors -= 1;
  g_live_bytes -= bytes;
  ReportExternal(env, -bytes);
  return true;
}

bool IsDisposed(const Napi::Value& v) {
  Slot* s = SlotOf(v);
  if (s == nullptr) throw ArgError("argument 0 must be a Tensor");
  return !s->alive;
}

int64_t LiveTensors() { return g_live_tensors; }
int64_t LiveBytes() { return g_live_bytes; }

bool IsTensor(const Napi::Value& v) { return v.IsNumber() && SlotOf(v) != nullptr; }

const at::Tensor& TensorArg(const Napi::CallbackInfo& info, size_t i) {
  Slot* s = SlotOf(info[i]);
  if (s == nullptr) Fail(i, "a Tensor");
  if (!s->alive) throw ArgError("Tensor is disposed");
  return s->tensor;
}

c10::optional<at::Tensor> OptTensorArg(const Napi::CallbackInfo& info, size_t i) {
  if (Absent(info[i])) return c10::nullopt;
  return TensorArg(info, i);
}

std::vector<at::Tensor> TensorListArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsArray()) Fail(i, "an array of Tensors");
  auto arr = info[i].As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); ++k) {
    Slot* s = SlotOf(arr.Get(k));
    if (s == nullptr) Fail(i, "an array of Tensors (element " + std::to_string(k) + " is not)");
    if (!s->alive) throw ArgError("Tensor is disposed (element " + std::to_string(k) + ")");
    out.push_back(s->tensor);
  }
  return out;
}

at::Scalar ToScalar(double v) {
  // JS has one number type: integral values act as Python ints, others as Python floats.
  if (std::isfinite(v) && std::floor(v) == v && std::fabs(v) <= 9007199254740992.0)
    return at::Scalar(static_cast<int64_t>(v));
  return at::Scalar(v);
}

at::Tensor OperandArg(const Napi::CallbackInfo& info, size_t i, bool scalar) {
  if (!scalar) return TensorArg(info, i);
  return at::native::wrapped_scalar_tensor(ScalarArg(info, i));
}

int64_t ScalarMaskArg(const Napi::CallbackInfo& info, size_t i) {
  if (info[i].IsUndefined()) return 0;
  return IntArg(info, i);
}

double DoubleArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) Fail(i, "a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

int64_t IntArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) Fail(i, "an integer");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(v) || std::floor(v) != v || std::fabs(v) > 9007199254740992.0) Fail(i, "an integer");
  return static_cast<int64_t>(v);
}

bool BoolArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsBoolean()) Fail(i, "a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

std::string StringArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsString()) Fail(i, "a string");
  return info[i].As<Napi::String>().Utf8Value();
}

std::vector<int64_t> IntListArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsArray()) Fail(i, "an array of integers");
  auto arr = info[i].As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); ++k) {
    Napi::Value e = arr.Get(k);
    double v = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : NAN;
    if (!std::isfinite(v) || std::floor(v) != v) Fail(i, "an array of integers");
    out[k] = static_cast<int64_t>(v);
  }
  return out;
}

c10::optional<std::vector<int64_t>> OptIntListArg(const Napi::CallbackInfo& info, size_t i) {
  if (Absent(info[i])) return c10::nullopt;
  return IntListArg(info, i);
}

c10::optional<double> OptDoubleArg(const Napi::CallbackInfo& info, size_t i) {
  if (Absent(info[i])) return c10::nullopt;
  return DoubleArg(info, i);
}

c10::optional<int64_t> OptIntArg(const Napi::CallbackInfo& info, size_t i) {
  if (Absent(info[i])) return c10::nullopt;
  return IntArg(info, i);
}

at::Scalar ScalarArg(const Napi::CallbackInfo& info, size_t i) {
  if (info[i].IsBoolean()) return at::Scalar(info[i].As<Napi::Boolean>().Value());
  return ToScalar(DoubleArg(info, i));
}

c10::optional<at::Scalar> OptScalarArg(const Napi::CallbackInfo& info, size_t i) {
  if (Absent(info[i])) return c10::nullopt;
  return ScalarArg(info, i);
}

at::ScalarType DTypeArg(const Napi::CallbackInfo& info, size_t i) {
  const std::string s = StringArg(info, i);
  if (s == "float32") return at::kFloat;
  if (s == "float64") return at::kDouble;
  if (s == "int64") return at::kLong;
  if (s == "int32") return at::kInt;
  if (s == "uint8") return at::kByte;
  if (s == "bool") return at::kBool;
  if (s == "float16") return at::kHalf;
  if (s == "bfloat16") return at::kBFloat16;
  throw ArgError("unknown dtype '" + s +
                 "' (expected float32, float64, int64, int32, uint8, bool, float16 or bfloat16)");
}

c10::optional<at::ScalarType> OptDTypeArg(const Napi::CallbackInfo& info, size_t i) {
  if (Absent(info[i])) return c10::nullopt;
  return DTypeArg(info, i);
}

const char* DTypeName(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    default: return c10::toString(t);
  }
}

at::Device DeviceArg(const Napi::CallbackInfo& info, size_t i) {
  if (Absent(info[i])) return at::Device(at::kCPU);
  return at::Device(StringArg(info, i));  // c10 checks the string ("cpu", "cuda", "cuda:1")
}

at::TensorOptions OptionsArg(const Napi::CallbackInfo& info, size_t dtype_i, size_t device_i) {
  auto dtype = OptDTypeArg(info, dtype_i);
  return at::TensorOptions().dtype(dtype.value_or(at::kFloat)).device(DeviceArg(info, device_i));
}

void Rethrow(Napi::Env env, const char* op) {
  const std::string prefix = std::string(op) + ": ";
  try {
    throw;
  } catch (const Napi::Error& e) {
    throw Napi::Error::New(env, prefix + e.Message());
  } catch (const ArgError& e) {
    throw Napi::TypeError::New(env, prefix + e.what());
  } catch (const c10::Error& e) {
    throw Napi::Error::New(env, prefix + e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    throw Napi::RangeError::New(env, prefix + "out of memory");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, prefix + e.what());
  } catch (...) {
    throw Napi::Error::New(env, prefix + "unknown native error");
  }
}

std::vector<Entry>& Registry() {
  static std::vector<Entry> entries;
  return entries;
}

Register::Register(std::initializer_list<Entry> entries) {
  for (const auto& e : entries) Registry().push_back(e);
}

}  // namespace dp
