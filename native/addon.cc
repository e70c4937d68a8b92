// Module entry: tensor metadata, disposal, threads, seeding, devices; exports every registered op.
#include "common.h"

#include <ATen/Parallel.h>
#include <torch/version.h>

#include <malloc.h>


using dp::IntArg;
using dp::TensorArg;

namespace {

// dispose(t) -> whether it was live. Disposing twice is allowed (as in TF.js).
DP_FN(dispose) { return Napi::Boolean::New(info.Env(), dp::Dispose(info.Env(), info[0])); }

// disposeMany(handles[]): one call for a whole tidy() scope.
DP_FN(disposeMany) {
  if (!info[0].IsArray()) throw dp::ArgError("argument 0 must be an array of Tensors");
  auto arr = info[0].As<Napi::Array>();
  const uint32_t n = arr.Length();
  for (uint32_t i = 0; i < n; ++i) dp::Dispose(info.Env(), arr.Get(i));
  return info.Env().Undefined();
}

DP_FN(isDisposed) { return Napi::Boolean::New(info.Env(), dp::IsDisposed(info[0])); }

DP_FN(memory) {
  auto out = Napi::Object::New(info.Env());
  out.Set("numTensors", Napi::Number::New(info.Env(), static_cast<double>(dp::LiveTensors())));
  out.Set("numBytes", Napi::Number::New(info.Env(), static_cast<double>(dp::LiveBytes())));
  return out;
}

DP_FN(shape) {
  const auto& t = TensorArg(info, 0);
  auto sizes = t.sizes();
  auto out = Napi::Array::New(info.Env(), sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) out.Set(i, Napi::Number::New(info.Env(), static_cast<double>(sizes[i])));
  return out;
}

DP_FN(dtype) { return Napi::String::New(info.Env(), dp::DTypeName(TensorArg(info, 0).scalar_type())); }

DP_FN(device) { return Napi::String::New(info.Env(), TensorArg(info, 0).device().str()); }

DP_FN(isContiguous) {
  const auto& t = TensorArg(info, 0);
  bool cl = info.Length() > 1 && info[1].IsString() && info[1].As<Napi::String>().Utf8Value() == "channels_last";
  return Napi::Boolean::New(info.Env(), t.is_contiguous(cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous));
}

DP_FN(setNumThreads) {
  int64_t n = IntArg(info, 0);
  if (n < 1) throw dp::ArgError("argument 0 must be a positive integer");
  at::set_num_threads(static_cast<int>(n));
  return info.Env().Undefined();
}

DP_FN(getNumThreads) { return Napi::Number::New(info.Env(), at::get_num_threads()); }

DP_FN(manualSeed) {
  const uint64_t seed = static_cast<uint64_t>(IntArg(info, 0));
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(seed);
  }
  if (at::hasCUDA()) {
    for (int64_t i = 0; i < static_cast<int64_t>(at::detail::getCUDAHooks().getNumGPUs()); ++i) {
      auto gen = at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(i)));
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_current_seed(seed);
    }
  }
  return info.Env().Undefined();
}

DP_FN(cudaDeviceCount) {
  int n = at::hasCUDA() ? at::detail::getCUDAHooks().getNumGPUs() : 0;
  return Napi::Number::New(info.Env(), n);
}

DP_FN(cudaSynchronize) {
  if (at::hasCUDA()) at::detail::getCUDAHooks().deviceSynchronize(at::detail::getCUDAHooks().current_device());
  return info.Env().Undefined();
}

// glibc serves allocations above its mmap threshold (128 KiB, adapting up to 32 MiB) with fresh
// mmap'd pages and returns freed heap tops to the OS, so every conv's multi-MiB buffers fault in
// anew (~2,000 page faults per 16x64x32x32 conv2d, measured): that cost 3-5x in conv throughput.
// Serving everything from the heap and keeping freed memory makes it reused. The threshold alone
// stops at glibc's cap of 32 MiB, and a ddpm-cifar10-32 forward at batch 64 has 32 MiB
// activations: ~650k faults per forward until mmap was turned off (M_MMAP_MAX 0), ~35k after.
// Threads whose arena cannot grow fall back to the main heap.
void TuneAllocator() {
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  if (std::getenv("DIFFPRUNE_DEFAULT_MALLOC") == nullptr) TuneAllocator();
  for (const auto& e : dp::Registry()) exports.Set(e.name, Napi::Function::New(env, e.fn, e.name));
  exports.Set("torchVersion", Napi::String::New(env, TORCH_VERSION));
  return exports;
}

dp::Register reg({
    {"dispose", dispose},
    {"disposeMany", disposeMany},
    {"isDisposed", isDisposed},
    {"memory", memory},
    {"shape", shape},
    {"dtype", dtype},
    {"device", device},
    {"isContiguous", isContiguous},
    {"setNumThreads", setNumThreads},
    {"getNumThreads", getNumThreads},
    {"manualSeed", manualSeed},
    {"cudaDeviceCount", cudaDeviceCount},
    {"cudaSynchronize", cudaSynchronize},
});

}  // namespace

NODE_API_MODULE(diffprune_native, Init)
