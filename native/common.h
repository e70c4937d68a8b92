// Shared helpers of the addon: tensor handles, argument checks, error conversion, registration.
// Every exported function is defined with DP_FN so that no C++ exception escapes into Node:
// libtorch's c10::Error becomes a JS Error carrying its message without the C++ backtrace.
#pragma once

#include <napi.h>
#include <ATen/ATen.h>

#include <c10/util/Optional.h>
#include <stdexcept>
#include <string>
#include <vector>

namespace dp {

// A JS tensor handle is a number: a slot index in a native table plus the slot's generation
// (index + generation * 2^26). Numbers cost nothing to create, unlike externals or wrapped
// objects, whose weak references cost microseconds per op; a stale or foreign number is
// detected by the generation and bounds checks, never dereferenced.

// Thrown by argument checks; becomes a JS TypeError.
struct ArgError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Tensor handles.
Napi::Value Wrap(Napi::Env env, at::Tensor tensor);  // undefined tensor -> null
Napi::Value WrapList(Napi::Env env, const std::vector<at::Tensor>& tensors);
bool IsTensor(const Napi::Value& v);
const at::Tensor& TensorArg(const Napi::CallbackInfo& info, size_t i);
c10::optional<at::Tensor> OptTensorArg(const Napi::CallbackInfo& info, size_t i);
std::vector<at::Tensor> TensorListArg(const Napi::CallbackInfo& info, size_t i);
// A tensor, or with `scalar` a JS number or boolean (handles are numbers too, so the caller
// says which). A number becomes a wrapped-number tensor, which gives PyTorch's type promotion
// for Python scalars: int64 tensor + 2 stays int64, + 2.5 becomes float.
at::Tensor OperandArg(const Napi::CallbackInfo& info, size_t i, bool scalar);
// Bit k of argument i: whether operand k is a scalar.
int64_t ScalarMaskArg(const Napi::CallbackInfo& info, size_t i);
// Frees the handle's tensor; false when it was already disposed. Throws for a non-handle.
bool Dispose(Napi::Env env, const Napi::Value& v);
bool IsDisposed(const Napi::Value& v);
int64_t LiveTensors();
int64_t LiveBytes();

// Plain arguments.
double DoubleArg(const Napi::CallbackInfo& info, size_t i);
int64_t IntArg(const Napi::CallbackInfo& info, size_t i);
bool BoolArg(const Napi::CallbackInfo& info, size_t i);
std::string StringArg(const Napi::CallbackInfo& info, size_t i);
std::vector<int64_t> IntListArg(const Napi::CallbackInfo& info, size_t i);
c10::optional<std::vector<int64_t>> OptIntListArg(const Napi::CallbackInfo& info, size_t i);
c10::optional<double> OptDoubleArg(const Napi::CallbackInfo& info, size_t i);
c10::optional<int64_t> OptIntArg(const Napi::CallbackInfo& info, size_t i);
at::Scalar ScalarArg(const Napi::CallbackInfo& info, size_t i);
c10::optional<at::Scalar> OptScalarArg(const Napi::CallbackInfo& info, size_t i);
at::ScalarType DTypeArg(const Napi::CallbackInfo& info, size_t i);
c10::optional<at::ScalarType> OptDTypeArg(const Napi::CallbackInfo& info, size_t i);
at::Device DeviceArg(const Napi::CallbackInfo& info, size_t i);
at::TensorOptions OptionsArg(const Napi::CallbackInfo& info, size_t dtype_i, size_t device_i);
const char* DTypeName(at::ScalarType t);
at::Scalar ToScalar(double v);

// Errors: rethrows the current exception as a JS error prefixed with the op name.
[[noreturn]] void Rethrow(Napi::Env env, const char* op);

// Registration: each source file adds its functions at static-initialisation time.
using Fn = Napi::Value (*)(const Napi::CallbackInfo&);
struct Entry {
  const char* name;
  Fn fn;
};
std::vector<Entry>& Registry();
struct Register {
  Register(std::initializer_list<Entry> entries);
};

}  // namespace dp

#define DP_FN(name) DP_FN_NAMED(name, #name)
// For ops whose JS name is not a usable C++ identifier (std).
#define DP_FN_NAMED(ident, jsname)                                      \
  static Napi::Value ident##_body(const Napi::CallbackInfo& info);      \
  static Napi::Value ident(const Napi::CallbackInfo& info) {            \
    try {                                                               \
      return ident##_body(info);                                        \
    } catch (...) {                                                     \
      dp::Rethrow(info.Env(), jsname);                                  \
    }                                                                   \
  }                                                                     \
  static Napi::Value ident##_body(const Napi::CallbackInfo& info)
