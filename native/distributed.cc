// torch.distributed over libtorch's c10d: one process group per process (PyTorch's default
// group), its rendezvous on a TCPStore, Gloo on CPU and NCCL on CUDA builds. The collectives
// block the calling thread until done or until the group's timeout; a peer that dies or a
// rendezvous that never completes becomes an exception (a JS Error), never a hang.
#include "common.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef DIFFPRUNE_CUDA
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <ATen/core/grad_mode.h>
#include <torch/version.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>

#include <csignal>
#include <sys/prctl.h>
#include <unistd.h>

using namespace dp;

namespace {

// libtorch 1.13's ProcessGroupGloo and ProcessGroupNCCL are ProcessGroups; from 2.0 on they are
// Backends (with the same collectives) under a ProcessGroup that dispatches by device.
#if TORCH_VERSION_MAJOR >= 2
using Collectives = c10d::Backend;
#else
using Collectives = c10d::ProcessGroup;
#endif

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<Collectives> pg;
  std::string backend;
  int rank = 0;
  int size = 1;
  std::chrono::milliseconds timeout{0};
};

std::unique_ptr<Group> group;

Group& Current(const char* op) {
  if (!group) throw std::runtime_error(std::string(op) + ": the default process group is not initialized: call initProcessGroup() first");
  return *group;
}

bool IsLoopback(const std::string& host) { return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1"; }

// Which address Gloo's pairs listen on, as PyTorch chooses it: GLOO_SOCKET_IFNAME names an
// interface; a loopback master means a single machine; otherwise this machine's hostname.
std::shared_ptr<::gloo::transport::Device> GlooDevice(const std::string& master) {
  const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
  if (ifname != nullptr && *ifname != '\0') return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  if (IsLoopback(master)) return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

// Waits for `work`, rethrowing its error. Past the group's timeout, c10d's wait throws
// ("Operation timed out!"); a wait that returns false instead is made an error too.
void Wait(const c10::intrusive_ptr<c10d::Work>& work, const Group& g) {
  if (!work->wait(g.timeout)) {
    try {
      work->abort();  // most of Gloo's works do not implement it
    } catch (...) {
    }
    throw std::runtime_error("timed out after " + std::to_string(g.timeout.count()) + " ms");
  }
}

// Buckets of at most `cap` bytes of tensors of one dtype and device, in order (DDP's buckets).
std::vector<std::vector<size_t>> Buckets(const std::vector<at::Tensor>& ts, int64_t cap) {
  std::vector<std::vector<size_t>> out;
  std::map<std::pair<int, std::string>, size_t> open;  // (dtype, device) -> bucket index
  std::vector<int64_t> bytes;
  for (size_t i = 0; i < ts.size(); ++i) {
    const auto key = std::make_pair(static_cast<int>(ts[i].scalar_type()), ts[i].device().str());
    const int64_t n = static_cast<int64_t>(ts[i].nbytes());
    auto it = open.find(key);
    if (it == open.end() || (bytes[it->second] > 0 && bytes[it->second] + n > cap)) {
      out.emplace_back();
      bytes.push_back(0);
      it = open.insert_or_assign(key, out.size() - 1).first;
    }
    out[it->second].push_back(i);
    bytes[it->second] += n;
  }
  return out;
}

at::Tensor Flatten(const std::vector<at::Tensor>& ts, const std::vector<size_t>& idx) {
  std::vector<at::Tensor> flat;
  flat.reserve(idx.size());
  for (size_t i : idx) flat.push_back(ts[i].reshape({-1}));
  return at::cat(flat);
}

void Unflatten(const at::Tensor& buffer, const std::vector<at::Tensor>& ts, const std::vector<size_t>& idx) {
  int64_t offset = 0;
  for (size_t i : idx) {
    const int64_t n = ts[i].numel();
    ts[i].copy_(buffer.narrow(0, offset, n).view(ts[i].sizes()));
    offset += n;
  }
}

void CheckDense(const std::vector<at::Tensor>& ts, const char* op) {
  for (size_t i = 0; i < ts.size(); ++i) {
    if (!ts[i].defined()) throw ArgError(std::string(op) + ": tensor " + std::to_string(i) + " is undefined");
    if (ts[i].is_sparse()) throw ArgError(std::string(op) + ": tensor " + std::to_string(i) + " is sparse; only dense tensors are supported");
  }
}

// initProcessGroup(backend, masterAddr, masterPort, rank, worldSize, timeoutMs): the TCPStore
// rendezvous (served by rank 0) and the group; returns when every rank has joined.
DP_FN(distInit) {
  const std::string backend = StringArg(info, 0), host = StringArg(info, 1);
  const int64_t port = IntArg(info, 2), rank = IntArg(info, 3), size = IntArg(info, 4), timeout_ms = IntArg(info, 5);
  if (group) throw std::runtime_error("the default process group is already initialized: call destroyProcessGroup() first");
  if (port < 1 || port > 65535) throw ArgError("masterPort must be in 1..65535, got " + std::to_string(port));
  if (size < 1) throw ArgError("worldSize must be >= 1, got " + std::to_string(size));
  if (rank < 0 || rank >= size) throw ArgError("rank must be in 0.." + std::to_string(size - 1) + ", got " + std::to_string(rank));
  if (timeout_ms < 1) throw ArgError("timeout must be a positive number of milliseconds");
  const std::chrono::milliseconds timeout(timeout_ms);
  auto g = std::make_unique<Group>();
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(port);
  so.isServer = rank == 0;
  so.numWorkers = static_cast<std::size_t>(size);
  so.waitWorkers = true;
  so.timeout = timeout;
  const auto t0 = std::chrono::steady_clock::now();
  auto store = c10::make_intrusive<c10d::TCPStore>(host, so);
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  // The server stops waiting for workers at the timeout without a word (its own count of them
  // is not readable through the store's prefix): each worker counts itself under our key.
  if (rank != 0) store->add("diffprune/joined", 1);
  else if (waited >= timeout && size > 1) {
    const int64_t joined = 1 + store->add("diffprune/joined", 0);
    if (joined < size)
      throw std::runtime_error("only " + std::to_string(joined) + " of " + std::to_string(size) + " processes joined the rendezvous");
  }
  g->store = store;
  if (backend == "gloo") {
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    opts->devices.push_back(GlooDevice(host));
    opts->threads = 2;
    g->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(g->store, static_cast<int>(rank), static_cast<int>(size), opts);
  } else if (backend == "nccl") {
#ifdef DIFFPRUNE_CUDA
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;
    g->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(g->store, static_cast<int>(rank), static_cast<int>(size), opts);
#else
    throw std::runtime_error("backend \"nccl\" needs the addon built against a CUDA libtorch (DIFFPRUNE_TORCH_DIR); on CPU use backend \"gloo\"");
#endif
  } else {
    throw ArgError("backend must be \"gloo\" or \"nccl\", got \"" + backend + "\"");
  }
  g->backend = backend;
  g->rank = static_cast<int>(rank);
  g->size = static_cast<int>(size);
  g->timeout = timeout;
  group = std::move(g);
  return info.Env().Undefined();
}

DP_FN(distDestroy) {
  const bool had = static_cast<bool>(group);
  group.reset();
  return Napi::Boolean::New(info.Env(), had);
}

DP_FN(distIsInitialized) { return Napi::Boolean::New(info.Env(), static_cast<bool>(group)); }

// Runs one collective per bucket of `ts` (each bucket one flat buffer, all in flight at once, as
// DDP overlaps them), waits for each in order and hands its result to `finish` (which copies it
// back where it belongs).
template <typename Launch, typename Finish>
void Bucketed(const Group& g, const std::vector<at::Tensor>& ts, int64_t cap, Launch launch, Finish finish) {
  if (cap < 1) throw ArgError("bucketBytes must be positive");
  at::NoGradGuard no_grad;
  const auto buckets = Buckets(ts, cap);
  std::vector<at::Tensor> buffers;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  for (const auto& b : buckets) {
    std::vector<at::Tensor> one{Flatten(ts, b)};
    works.push_back(launch(one));
    buffers.push_back(one[0]);
  }
  for (size_t k = 0; k < buckets.size(); ++k) {
    Wait(works[k], g);
    finish(buffers[k], buckets[k]);
  }
}

// distAllReduce(tensors[], op "sum" | "avg", bucketBytes): in place.
DP_FN(distAllReduce) {
  auto& g = Current("allReduce");
  auto ts = TensorListArg(info, 0);
  const std::string op = StringArg(info, 1);
  const int64_t cap = IntArg(info, 2);
  if (op != "sum" && op != "avg") throw ArgError("op must be \"sum\" or \"avg\", got \"" + op + "\"");
  CheckDense(ts, "allReduce");
  Bucketed(
      g, ts, cap,
      [&](std::vector<at::Tensor>& one) {
        c10d::AllreduceOptions o;
        o.reduceOp = c10d::ReduceOp::SUM;  // Gloo has no AVG: divide afterwards
        o.timeout = g.timeout;
        return g.pg->allreduce(one, o);
      },
      [&](at::Tensor& buffer, const std::vector<size_t>& idx) {
        if (op == "avg") buffer.div_(g.size);
        Unflatten(buffer, ts, idx);
      });
  return info.Env().Undefined();
}

// distBroadcast(tensors[], src, bucketBytes): in place, src's values everywhere.
DP_FN(distBroadcast) {
  auto& g = Current("broadcast");
  auto ts = TensorListArg(info, 0);
  const int64_t src = IntArg(info, 1), cap = IntArg(info, 2);
  if (src < 0 || src >= g.size) throw ArgError("src must be a rank in 0.." + std::to_string(g.size - 1) + ", got " + std::to_string(src));
  CheckDense(ts, "broadcast");
  Bucketed(
      g, ts, cap,
      [&](std::vector<at::Tensor>& one) {
        c10d::BroadcastOptions o;
        o.rootRank = src;
        o.timeout = g.timeout;
        return g.pg->broadcast(one, o);
      },
      [&](at::Tensor& buffer, const std::vector<size_t>& idx) {
        if (g.rank != src) Unflatten(buffer, ts, idx);
      });
  return info.Env().Undefined();
}

// distAllGather(t) -> one tensor per rank (every rank's t has the same shape and dtype).
DP_FN(distAllGather) {
  auto& g = Current("allGather");
  const at::Tensor t = TensorArg(info, 0).contiguous();
  at::NoGradGuard no_grad;
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int r = 0; r < g.size; ++r) outputs[0].push_back(at::empty_like(t));
  std::vector<at::Tensor> inputs{t};
  c10d::AllgatherOptions o;
  o.timeout = g.timeout;
  Wait(g.pg->allgather(outputs, inputs, o), g);
  return WrapList(info.Env(), outputs[0]);
}

DP_FN(distBarrier) {
  auto& g = Current("barrier");
  c10d::BarrierOptions o;
  o.timeout = g.timeout;
  Wait(g.pg->barrier(o), g);
  return info.Env().Undefined();
}

// distExitWithParent(ppid): SIGTERM for this process when its parent (a launcher) dies, so that
// a worker busy in a long computation does not outlive it (Linux's parent-death signal).
DP_FN(distExitWithParent) {
  const int64_t ppid = IntArg(info, 0);
  if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) throw std::runtime_error("prctl(PR_SET_PDEATHSIG) failed");
  if (getppid() != static_cast<pid_t>(ppid)) raise(SIGTERM);  // it died before the call
  return info.Env().Undefined();
}

Register reg({
    {"distExitWithParent", distExitWithParent},
    {"distInit", distInit},
    {"distDestroy", distDestroy},
    {"distIsInitialized", distIsInitialized},
    {"distAllReduce", distAllReduce},
    {"distBroadcast", distBroadcast},
    {"distAllGather", distAllGather},
    {"distBarrier", distBarrier},
});

}  // namespace
