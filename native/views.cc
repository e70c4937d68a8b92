// Views, indexing, joining and conversion.
#include "common.h"

using namespace dp;

namespace {

Napi::Value W(const Napi::CallbackInfo& info, at::Tensor t) { return Wrap(info.Env(), std::move(t)); }

DP_FN(reshape) { return W(info, TensorArg(info, 0).reshape(IntListArg(info, 1))); }
DP_FN(view) { return W(info, TensorArg(info, 0).view(IntListArg(info, 1))); }
DP_FN(permute) { return W(info, TensorArg(info, 0).permute(IntListArg(info, 1))); }
DP_FN(transpose) { return W(info, TensorArg(info, 0).transpose(IntArg(info, 1), IntArg(info, 2))); }
DP_FN(narrow) { return W(info, TensorArg(info, 0).narrow(IntArg(info, 1), IntArg(info, 2), IntArg(info, 3))); }
// slice(t, dim, start, end, step): end may be null (to the end).
DP_FN(slice) {
  return W(info, TensorArg(info, 0).slice(IntArg(info, 1), OptIntArg(info, 2), OptIntArg(info, 3), IntArg(info, 4)));
}
DP_FN(select) { return W(info, TensorArg(info, 0).select(IntArg(info, 1), IntArg(info, 2))); }
DP_FN(indexSelect) { return W(info, at::index_select(TensorArg(info, 0), IntArg(info, 1), TensorArg(info, 2))); }
DP_FN(gather) { return W(info, at::gather(TensorArg(info, 0), IntArg(info, 1), TensorArg(info, 2))); }
DP_FN(cat) { return W(info, at::cat(TensorListArg(info, 0), IntArg(info, 1))); }
DP_FN(stack) { return W(info, at::stack(TensorListArg(info, 0), IntArg(info, 1))); }
// split(t, sizeOrSizes, dim)
DP_FN(split) {
  const auto& t = TensorArg(info, 0);
  int64_t dim = IntArg(info, 2);
  if (info[1].IsArray()) return WrapList(info.Env(), at::split_with_sizes(t, IntListArg(info, 1), dim));
  int64_t size = IntArg(info, 1);
  if (size <= 0) throw ArgError("split size must be positive");
  return WrapList(info.Env(), at::split(t, size, dim));
}
DP_FN(chunk) {
  int64_t n = IntArg(info, 1);
  if (n <= 0) throw ArgError("chunk count must be positive");
  return WrapList(info.Env(), at::chunk(TensorArg(info, 0), n, IntArg(info, 2)));
}
DP_FN(unsqueeze) { return W(info, TensorArg(info, 0).unsqueeze(IntArg(info, 1))); }
DP_FN(squeeze) {
  auto dim = OptIntArg(info, 1);
  return W(info, dim ? TensorArg(info, 0).squeeze(*dim) : TensorArg(info, 0).squeeze());
}
DP_FN(flatten) { return W(info, TensorArg(info, 0).flatten(IntArg(info, 1), IntArg(info, 2))); }
DP_FN(expand) { return W(info, TensorArg(info, 0).expand(IntListArg(info, 1))); }
DP_FN(repeat) { return W(info, TensorArg(info, 0).repeat(IntListArg(info, 1))); }
DP_FN(flip) { return W(info, TensorArg(info, 0).flip(IntListArg(info, 1))); }
// contiguous(t, format): format "contiguous" (default) or "channels_last".
DP_FN(contiguous) {
  auto fmt = at::MemoryFormat::Contiguous;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    const std::string s = StringArg(info, 1);
    if (s == "channels_last") fmt = at::MemoryFormat::ChannelsLast;
    else if (s != "contiguous") throw ArgError("memory format must be 'contiguous' or 'channels_last', got '" + s + "'");
  }
  return W(info, TensorArg(info, 0).contiguous(fmt));
}
DP_FN(clone) { return W(info, TensorArg(info, 0).clone()); }
// to(t, device | null, dtype | null)
DP_FN(to) {
  at::Tensor t = TensorArg(info, 0);
  if (!info[1].IsUndefined() && !info[1].IsNull()) t = t.to(DeviceArg(info, 1));
  if (auto dtype = OptDTypeArg(info, 2)) t = t.to(*dtype);
  return W(info, t);
}

Register reg({
    {"reshape", reshape},   {"view", view},         {"permute", permute},     {"transpose", transpose},
    {"narrow", narrow},     {"slice", slice},       {"select", select},       {"indexSelect", indexSelect},
    {"gather", gather},     {"cat", cat},           {"stack", stack},         {"split", split},
    {"chunk", chunk},       {"unsqueeze", unsqueeze}, {"squeeze", squeeze},   {"flatten", flatten},
    {"expand", expand},     {"repeat", repeat},     {"flip", flip},           {"contiguous", contiguous},
    {"clone", clone},       {"to", to},
});

}  // namespace
